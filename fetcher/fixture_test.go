package fetcher

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// fixture is a multi-image seed: a single-platform OCI image, a
// two-platform nested index, and a tag-only entry.
type fixture struct {
	seed   testseed.Seed
	demo   *testseed.Built
	multi  ocispec.Descriptor
	kids   []*testseed.Built
	tagged *testseed.Built
	blobs  map[digest.Digest][]byte
}

var build = testutil.Build

func newFixture(t testing.TB) *fixture {
	f := &fixture{blobs: map[digest.Digest][]byte{}}
	f.demo = build(t, testseed.Standard("docker.io/library/demo:1.0", amd64, false, testseed.Gzip))
	var blobs map[digest.Digest][]byte
	var err error
	f.multi, blobs, f.kids, err = testseed.BuildIndex(testseed.MultiPlatform{
		Name: "registry.local/multi:2",
		Images: []testseed.Image{
			testseed.Standard("", amd64, false, testseed.Zstd),
			testseed.Standard("", arm64, false, testseed.Gzip),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.tagged = build(t, testseed.Standard("", amd64, false, testseed.Uncompressed))
	f.seed.Add("docker.io/library/demo:1.0", f.demo.Manifest, f.demo.Blobs)
	f.seed.Add("registry.local/multi:2", f.multi, blobs)
	f.seed.AddRaw(f.tagged.Manifest, map[string]string{ocispec.AnnotationRefName: "v3"}, f.tagged.Blobs)
	for d, b := range f.seed.Blobs {
		f.blobs[d] = b
	}
	return f
}

// writeSeed writes the fixture in one of the formats and returns its path.
func (f *fixture) write(t testing.TB, format string) string {
	dir := t.TempDir()
	switch format {
	case "oci-dir":
		p := filepath.Join(dir, "seed")
		if err := f.seed.WriteOCIDir(p); err != nil {
			t.Fatal(err)
		}
		return p
	case "oci-tar", "oci-tar.gz", "oci-tar.zst":
		return writeCompressed(t, dir, format, f.seed.WriteOCITar)
	}
	t.Fatalf("unknown format %s", format)
	return ""
}

// writeCompressed writes what write writes, compressed as format's
// extension says, under a name that says nothing about the compression:
// detection is by magic.
func writeCompressed(t testing.TB, dir, format string, write func(w io.Writer) error) string {
	c := testseed.Uncompressed
	switch filepath.Ext(format) {
	case ".gz":
		c = testseed.Gzip
	case ".zst":
		c = testseed.Zstd
	}
	return testutil.WriteFile(t, filepath.Join(dir, "seed.bin"), testutil.Archive(t, c, write))
}

func openSeed(t testing.TB, p string) *Seed {
	s, err := Open(context.Background(), p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
