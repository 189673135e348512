package fetcher

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zeroLayerSeed writes an OCI layout tar with one image whose only layer
// is n zero bytes in a tar, compressed with c (a small bomb), and returns
// its path and the layer descriptor.
func zeroLayerSeed(t *testing.T, n int, c testseed.Compression, mt string) (string, ocispec.Descriptor) {
	t.Helper()
	raw := testutil.RawTar(t, rawEntry{Name: "zeros", Body: make([]byte, n)})
	return layerOnlySeed(t, raw, compress(t, raw, c), mt)
}

// layerOnlySeed writes an OCI layout tar with one image whose only layer is
// blob (raw, compressed or not), and returns its path and the layer.
func layerOnlySeed(t *testing.T, raw, blob []byte, mt string) (string, ocispec.Descriptor) {
	t.Helper()
	layer := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	cb, _ := json.Marshal(ocispec.Image{Platform: amd64, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}}})
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}})
	man := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	p := testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.tar"), layoutWith(t, man,
		rawEntry{Name: blobPath(man.Digest), Body: mb},
		rawEntry{Name: blobPath(cfg.Digest), Body: cb},
		rawEntry{Name: blobPath(layer.Digest), Body: blob}))
	return p, layer
}

// Verify holds every layer to the limits it is given, with the one error
// text, and Fetch (which no longer knows of limits) serves the layer.
func TestVerifyLayerLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    testseed.Compression
		mt   string
	}{
		{"gzip", testseed.Gzip, ocispec.MediaTypeImageLayerGzip},
		{"zstd", testseed.Zstd, ocispec.MediaTypeImageLayerZstd},
		{"plain", testseed.Uncompressed, ocispec.MediaTypeImageLayer},
		{"zstd-skippable-first", testseed.Zstd, ocispec.MediaTypeImageLayerZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, layer := zeroLayerSeed(t, 8<<20, tc.c, tc.mt)
			if tc.name == "zstd-skippable-first" {
				raw := testutil.RawTar(t, rawEntry{Name: "zeros", Body: make([]byte, 8<<20)})
				skip := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0}, "skip"...)
				p, layer = layerOnlySeed(t, raw, append(skip, compress(t, raw, testseed.Zstd)...), tc.mt)
			}
			s := openSeed(t, p)
			if errs := s.Verify(context.Background(), layerlimit.Default()); len(errs) != 0 {
				t.Fatalf("default limits: %v", errs)
			}
			errs := s.Verify(context.Background(), layerlimit.Limits{MaxBytes: 1 << 20})
			if len(errs) != 1 || !errors.Is(errs[0], layerlimit.ErrBomb) {
				t.Fatalf("verify under a 1 MiB cap: %v, want one bomb", errs)
			}
			wantMsg(t, errs[0], "seed "+p+": layer "+layer.Digest.String()+": decompression bomb: expands beyond 1048576 bytes (ratio ")
			if strings.Count(errs[0].Error(), layer.Digest.String()) != 1 {
				t.Errorf("%q names the layer more than once", errs[0])
			}
			if b := readAll(t, s, layer); int64(len(b)) != layer.Size {
				t.Errorf("Fetch served %d of %d bytes", len(b), layer.Size)
			}
		})
	}
}

// A sparse entry's declared size counts, as import counts it.
func TestVerifySparseLayer(t *testing.T) {
	raw := testutil.SparseTar(t, "big", 3<<29)
	p, layer := layerOnlySeed(t, raw, compress(t, raw, testseed.Gzip), ocispec.MediaTypeImageLayerGzip)
	errs := openSeed(t, p).Verify(context.Background(), layerlimit.Default())
	if len(errs) != 1 || !errors.Is(errs[0], layerlimit.ErrBomb) || !strings.Contains(errs[0].Error(), layer.Digest.String()) {
		t.Fatalf("verify of a 1.5 GiB sparse layer: %v; want one bomb naming %s", errs, layer.Digest)
	}
}
