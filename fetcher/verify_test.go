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
	"github.com/klauspost/compress/zstd"
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

// blobSet collects blobs and their descriptors for a hand-made seed.
type blobSet map[digest.Digest][]byte

func (bs blobSet) add(mt string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	bs[d] = b
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

func (bs blobSet) json(mt string, v any) ocispec.Descriptor {
	b, _ := json.Marshal(v)
	return bs.add(mt, b)
}

// image adds a one-layer image for p (its layer: one file, body) and
// returns its manifest descriptor.
func (bs blobSet) image(t *testing.T, p ocispec.Platform, layerMT string, layer []byte, diffID digest.Digest) ocispec.Descriptor {
	l := bs.add(layerMT, layer)
	cfg := bs.json(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}})
	return bs.json(ocispec.MediaTypeImageManifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}})
}

func (bs blobSet) seed(t *testing.T, entry ocispec.Descriptor) *Seed {
	var es []rawEntry
	for d, b := range bs {
		es = append(es, rawEntry{Name: blobPath(d), Body: b})
	}
	return openSeed(t, testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.tar"), layoutWith(t, entry, es...)))
}

// Valid images verify ok: a buildx provenance attestation (an entry for
// unknown/unknown whose layers are in-toto documents), a zstd layer with a
// 64 MiB window, and one behind a skippable frame (TestVerifyLayerLimits).
func TestVerifyAcceptsValidOddities(t *testing.T) {
	raw := testutil.RawTar(t, rawEntry{Name: "zeros", Body: make([]byte, 80<<20)})
	t.Run("buildx-attestation", func(t *testing.T) {
		bs := blobSet{}
		img := bs.image(t, amd64, ocispec.MediaTypeImageLayerGzip, compress(t, raw, testseed.Gzip), digest.FromBytes(raw))
		img.Platform = &amd64
		stmt := []byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`)
		att := bs.image(t, ocispec.Platform{OS: "unknown", Architecture: "unknown"}, "application/vnd.in-toto+json", stmt, digest.FromBytes(stmt))
		att.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
		att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": img.Digest.String()}
		idx := bs.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{img, att}})
		if errs := bs.seed(t, idx).Verify(context.Background(), layerlimit.Default()); len(errs) != 0 {
			t.Errorf("verify: %v", errs)
		}
	})
	t.Run("zstd-64MiB-window", func(t *testing.T) {
		enc, _ := zstd.NewWriter(nil, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(false))
		bs := blobSet{}
		img := bs.image(t, amd64, ocispec.MediaTypeImageLayerZstd, enc.EncodeAll(raw, nil), digest.FromBytes(raw))
		if errs := bs.seed(t, img).Verify(context.Background(), layerlimit.Default()); len(errs) != 0 {
			t.Errorf("verify: %v", errs)
		}
	})
}

// What import refuses, verify reports: a layer shared by two manifests,
// the second giving it a wrong size; a manifest whose document says it is
// an index.
func TestVerifyReportsWhatImportRefuses(t *testing.T) {
	raw := testutil.RawTar(t, rawEntry{Name: "f", Body: []byte("hello")})
	layer := compress(t, raw, testseed.Gzip)
	t.Run("shared-layer-wrong-size", func(t *testing.T) {
		bs := blobSet{}
		a := bs.image(t, amd64, ocispec.MediaTypeImageLayerGzip, layer, digest.FromBytes(raw))
		l := bs.add(ocispec.MediaTypeImageLayerGzip, layer)
		l.Size++
		cfg := bs.json(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: arm64, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}}})
		b := bs.json(ocispec.MediaTypeImageManifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}})
		idx := bs.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{a, b}})
		errs := bs.seed(t, idx).Verify(context.Background(), layerlimit.Default())
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "size mismatch") || !strings.Contains(errs[0].Error(), l.Digest.String()) {
			t.Errorf("verify: %v; want one size mismatch for %s", errs, l.Digest)
		}
	})
	t.Run("zero-byte-layer", func(t *testing.T) {
		bs := blobSet{}
		img := bs.image(t, amd64, ocispec.MediaTypeImageLayerGzip, nil, digest.FromBytes(nil))
		errs := bs.seed(t, img).Verify(context.Background(), layerlimit.Default())
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "size of 0") {
			t.Errorf("verify: %v; want the zero-size layer reported", errs)
		}
	})
	t.Run("manifest-mediatype-field-says-index", func(t *testing.T) {
		bs := blobSet{}
		l := bs.add(ocispec.MediaTypeImageLayerGzip, layer)
		cfg := bs.json(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: amd64, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(raw)}}})
		m := bs.json(ocispec.MediaTypeImageManifest, ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Config: cfg, Layers: []ocispec.Descriptor{l}})
		errs := bs.seed(t, m).Verify(context.Background(), layerlimit.Default())
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "the document is an index") {
			t.Errorf("verify: %v; want the mismatch", errs)
		}
	})
	t.Run("manifest-document-is-index", func(t *testing.T) {
		bs := blobSet{}
		inner := bs.image(t, amd64, ocispec.MediaTypeImageLayerGzip, layer, digest.FromBytes(raw))
		idx := bs.json(ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{inner}})
		idx.MediaType = ocispec.MediaTypeImageManifest // the entry says manifest
		errs := bs.seed(t, idx).Verify(context.Background(), layerlimit.Default())
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "the document is an index") {
			t.Errorf("verify: %v; want the mismatch", errs)
		}
	})
}
