package testseed

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var allCompressions = []Compression{Uncompressed, Gzip, Zstd}

func decompress(t *testing.T, b []byte, c Compression) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case Uncompressed:
		return b
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if zr.Name != "" || !zr.ModTime.IsZero() {
			t.Errorf("gzip header leaks name %q / mtime %v", zr.Name, zr.ModTime)
		}
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readTar returns entries by name and the names in archive order.
func readTar(t *testing.T, b []byte) (map[string]*tar.Header, map[string][]byte, []string) {
	t.Helper()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := hdrs[h.Name]; dup {
			t.Errorf("duplicate tar entry %q", h.Name)
		}
		hdrs[h.Name], data[h.Name] = h, p
		order = append(order, h.Name)
	}
	return hdrs, data, order
}

func mustBuild(t *testing.T, img Image) *Built {
	t.Helper()
	b, err := Build(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildDeterministicAndDiffIDs(t *testing.T) {
	for _, docker := range []bool{false, true} {
		for _, c := range allCompressions {
			t.Run(c.String()+map[bool]string{false: "/oci", true: "/docker"}[docker], func(t *testing.T) {
				img := Standard("docker.io/library/demo:1.0", ocispec.Platform{}, docker, c)
				a, b := mustBuild(t, img), mustBuild(t, img)
				if a.Manifest.Digest != b.Manifest.Digest || len(a.Blobs) != len(b.Blobs) {
					t.Fatalf("non-deterministic: %s vs %s", a.Manifest.Digest, b.Manifest.Digest)
				}
				for d, p := range a.Blobs {
					if digest.FromBytes(p) != d || !bytes.Equal(p, b.Blobs[d]) {
						t.Errorf("blob %s differs or mismatches its digest", d)
					}
				}
				if p := a.Manifest.Platform; p == nil || p.OS != "linux" || p.Architecture != "amd64" {
					t.Errorf("manifest platform = %+v", p)
				}
				if len(a.Layers) != 3 || len(a.DiffIDs) != 3 {
					t.Fatalf("got %d layers, %d diffIDs", len(a.Layers), len(a.DiffIDs))
				}
				wantMT, _ := layerMediaType(c, docker)
				for i, l := range a.Layers {
					if l.MediaType != wantMT {
						t.Errorf("layer %d media type %s, want %s", i, l.MediaType, wantMT)
					}
					raw := decompress(t, a.Blobs[l.Digest], c)
					if digest.FromBytes(raw) != a.DiffIDs[i] || !bytes.Equal(raw, a.Uncompressed[a.DiffIDs[i]]) {
						t.Errorf("layer %d: diffID mismatch", i)
					}
				}
				var mf ocispec.Manifest
				if err := json.Unmarshal(a.Blobs[a.Manifest.Digest], &mf); err != nil {
					t.Fatal(err)
				}
				if mf.SchemaVersion != 2 || mf.MediaType != a.Manifest.MediaType || mf.Config.Digest != a.Config.Digest {
					t.Errorf("manifest = %+v", mf)
				}
				var cfg ocispec.Image
				if err := json.Unmarshal(a.Blobs[a.Config.Digest], &cfg); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(cfg.RootFS.DiffIDs, a.DiffIDs) || len(cfg.History) != 3 || cfg.Config.WorkingDir == "" || cfg.OS != "linux" {
					t.Errorf("config = %+v", cfg)
				}
				if docker != (a.Manifest.MediaType == MediaTypeDockerManifest) || docker != (a.Config.MediaType == MediaTypeDockerConfig) {
					t.Errorf("media types %s / %s for docker=%v", a.Manifest.MediaType, a.Config.MediaType, docker)
				}
			})
		}
	}
}

func TestLayerTarHeaders(t *testing.T) {
	b := mustBuild(t, Standard("x", ocispec.Platform{}, false, Uncompressed))
	hdrs, _, _ := readTar(t, b.Uncompressed[b.DiffIDs[0]])
	for name, h := range hdrs {
		if !h.ModTime.Equal(FixedTime) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: unpinned header %+v", name, h)
		}
	}
	if h := hdrs["bin/hello"]; h == nil || h.Mode != 0o755 {
		t.Errorf("bin/hello = %+v", h)
	}
	if h := hdrs["bin/hi"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "hello" {
		t.Errorf("bin/hi = %+v", h)
	}
	if h := hdrs["etc/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
		t.Errorf("etc/ = %+v", h)
	}
	hdrs2, _, _ := readTar(t, b.Uncompressed[b.DiffIDs[1]])
	if _, ok := hdrs2["usr/share/demo/.wh.remove-me.txt"]; !ok {
		t.Error("layer 2 lacks whiteout")
	}
	hdrs3, _, _ := readTar(t, b.Uncompressed[b.DiffIDs[2]])
	if _, ok := hdrs3["var/lib/demo/state/.wh..wh..opq"]; !ok {
		t.Error("layer 3 lacks opaque marker")
	}
	if h := hdrs3["usr/share/demo/notes-link.txt"]; h == nil || h.Typeflag != tar.TypeLink {
		t.Errorf("hardlink = %+v", h)
	}
	if Whiteout("a/b/c").Name != "a/b/.wh.c" || Whiteout("top").Name != ".wh.top" || OpaqueDir("a/b/").Name != "a/b/.wh..wh..opq" {
		t.Error("whiteout naming")
	}
	if _, err := Build(Image{Layers: []Layer{{Files: []File{{Name: ""}}}}}); err == nil {
		t.Error("empty name accepted")
	}
}

func TestCompressRoundTrip(t *testing.T) {
	payload := []byte(filler("payload", 200))
	for _, c := range allCompressions {
		var buf bytes.Buffer
		w, err := Compress(&buf, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(payload); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if c != Uncompressed && buf.Len() >= len(payload) {
			t.Errorf("%v: no compression (%d bytes)", c, buf.Len())
		}
		if got := decompress(t, buf.Bytes(), c); !bytes.Equal(got, payload) {
			t.Errorf("%v: round trip mismatch", c)
		}
		again, err := compressBytes(payload, c)
		if err != nil || !bytes.Equal(again, buf.Bytes()) {
			t.Errorf("%v: compression not deterministic", c)
		}
	}
	if _, err := Compress(io.Discard, Compression(42)); err == nil {
		t.Error("unknown compression accepted")
	}
}
