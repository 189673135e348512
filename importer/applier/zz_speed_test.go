package applier

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
)

func TestZZSpeed(t *testing.T) {
	seed := os.Getenv("SEED")
	f, _ := os.Open(seed)
	tr := tar.NewReader(f)
	dir := "/var/tmp/zzspeed"
	os.MkdirAll(dir, 0755)
	var layers []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasPrefix(h.Name, "blobs/") && h.Size > 1<<20 {
			p := filepath.Join("/var/tmp/zzlayers", filepath.Base(h.Name))
			os.MkdirAll("/var/tmp/zzlayers", 0755)
			layers = append(layers, p)
			if _, err := os.Stat(p); err == nil {
				continue
			}
			o, _ := os.Create(p)
			io.Copy(o, tr)
			o.Close()
		}
	}
	for round := 0; round < 1; round++ {
		for _, mode := range []string{os.Getenv("MODE")} {
			var total time.Duration
			for i, l := range layers {
				r, _ := os.Open(l)
				ds, _ := compression.DecompressStream(r)
				root := filepath.Join(dir, mode+"-"+string(rune('a'+i)))
				os.MkdirAll(root, 0755)
				start := time.Now()
				if mode == "archive" {
					_, err := archive.Apply(context.Background(), root, ds, archive.WithConvertWhiteout(archive.OverlayConvertWhiteout))
					if err != nil {
						t.Fatal(err)
					}
				} else {
					tr, _ := newTree(context.Background(), root, nil, true, processUmask())
					if _, err := tr.apply(ds); err != nil {
						t.Fatal(err)
					}
					tr.close()
				}
				total += time.Since(start)
				ds.Close()
				r.Close()
			}
			t.Logf("%s: %v", mode, total)

		}
	}
}
