package fetcher

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// countingFile records every read, seek and positioned read of a seed file.
type countingFile struct {
	*os.File
	mu                  sync.Mutex
	reads, seeks        int
	readBytes           int64
	readAts, readAtByte int64
	regions             map[int64]int // offset → times a read started there
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	c.mu.Lock()
	c.reads++
	c.readBytes += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) {
	c.mu.Lock()
	c.seeks++
	c.mu.Unlock()
	return c.File.Seek(off, whence)
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	c.mu.Lock()
	c.readAts++
	c.readAtByte += int64(n)
	c.mu.Unlock()
	return n, err
}

// TestOnePass proves the seed is indexed with one pass over its headers
// and each blob is then read once at its offset, never by rescanning.
func TestOnePass(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var seed testseed.Seed
	var built []*testseed.Built
	for i, name := range []string{"docker.io/library/a:1", "docker.io/library/b:1", "docker.io/library/c:1"} {
		img := testseed.Standard(name, amd64, false, testseed.Gzip)
		img.Layers = append(img.Layers, testseed.Layer{Files: []testseed.File{{Name: "big", Content: noise(1<<20 + i)}}})
		b := build(t, img)
		built = append(built, b)
		seed.Add(name, b.Manifest, b.Blobs)
	}
	f := &fixture{seed: seed}
	p := writeCompressed(t, t.TempDir(), "oci-tar", f.seed.WriteOCITar)
	fi, _ := os.Stat(p)

	var cf *countingFile
	old := wrapFile
	wrapFile = func(f *os.File) seedFile { cf = &countingFile{File: f}; return cf }
	defer func() { wrapFile = old }()

	s := openSeed(t, p)
	entries := len(seed.Blobs) + 4 // blobs, index.json, oci-layout, dirs
	if max := int64(entries) * 1024; cf.readBytes > max {
		t.Fatalf("indexing read %d bytes of a %d byte seed (more than headers: max %d)", cf.readBytes, fi.Size(), max)
	}
	reads, seeks := cf.reads, cf.seeks

	var blobBytes int64
	seen := map[digest.Digest]bool{}
	for _, b := range built {
		_, desc, err := NewResolver(Seeds{s}, nil).Resolve(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]ocispec.Descriptor{desc, b.Config}, b.Layers...) {
			if seen[d.Digest] {
				continue
			}
			seen[d.Digest] = true
			blobBytes += d.Size
			rc, err := s.Fetch(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
	}
	if cf.reads != reads || cf.seeks != seeks {
		t.Fatalf("serving blobs rescanned the tar: %d reads and %d seeks after indexing", cf.reads-reads, cf.seeks-seeks)
	}
	// Small documents (index, manifests) are read more than once while
	// resolving; big layers must be read exactly once.
	var docs int64
	for _, b := range seed.Blobs {
		if len(b) < 64<<10 {
			docs += int64(len(b))
		}
	}
	if max := blobBytes + 8*docs + 4096; cf.readAtByte > max {
		t.Fatalf("read %d bytes at offsets to serve %d bytes of blobs (max %d)", cf.readAtByte, blobBytes, max)
	}
	if cf.readAtByte < blobBytes {
		t.Fatalf("served %d blob bytes but read only %d", blobBytes, cf.readAtByte)
	}
	t.Logf("seed %d bytes: index %d reads/%d seeks/%d bytes; blobs %d bytes via %d ReadAt, %d bytes", fi.Size(), reads, seeks, cf.readBytes, blobBytes, cf.readAts, cf.readAtByte)
}
