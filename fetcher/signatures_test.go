package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sigSeed is a seed of one image and its cosign signature manifest
// (tagged sha256-<hex>.sig), whose layers are the payloads, in order; a
// payload given more than once is one blob listed that many times.
func sigSeed(t *testing.T, payloads ...[]byte) (*Seed, digest.Digest) {
	t.Helper()
	b := build(t, testseed.Image{Name: "registry.local/sig/img:1", Layers: []testseed.Layer{{Files: []testseed.File{{Name: "f", Content: []byte(t.Name())}}}}})
	var s testseed.Seed
	s.Add(b.Name, b.Manifest, b.Blobs)
	cfg := []byte("{}")
	blobs := map[digest.Digest][]byte{digest.FromBytes(cfg): cfg}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	for i, p := range payloads {
		d := digest.FromBytes(p)
		blobs[d] = p
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: MediaTypeSimpleSigning, Digest: d, Size: int64(len(p)),
			Annotations: map[string]string{annotationSignature: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "signature %d", i))}})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	blobs[md.Digest] = mb
	s.Add("registry.local/sig/img:"+SigTag(b.Manifest.Digest), md, blobs)
	f := &fixture{seed: s}
	return openSeed(t, f.write(t, "oci-tar")), b.Manifest.Digest
}

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A signature manifest that lists one payload many times costs the
// payload once: ls and import --verify-key read it once, and every
// signature over it shares its bytes (100 copies of 8 MiB took ~1 GB).
func TestSignaturePayloadsShared(t *testing.T) {
	payload := []byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:x"}}}` + strings.Repeat(" ", 8<<20))
	var ps [][]byte
	for range MaxSignatures {
		ps = append(ps, payload)
	}
	s, d := sigSeed(t, ps...)
	var sigs []Signature
	var err error
	n := allocated(func() { sigs, err = s.Signatures(context.Background(), d) })
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != MaxSignatures || string(sigs[len(sigs)-1].Signature) != fmt.Sprintf("signature %d", MaxSignatures-1) {
		t.Fatalf("%d signatures, want %d, each its own", len(sigs), MaxSignatures)
	}
	if n > 4*uint64(len(payload)) {
		t.Errorf("reading %d signatures over one %d-byte payload allocated %d bytes: the payload is read more than once", len(sigs), len(payload), n)
	}
}

// More signature layers than cosign verifies for an image (100), or more
// distinct payload and signature bytes than a document's cap, are
// refused in one line naming the image, before what is over is read.
func TestSignatureCaps(t *testing.T) {
	small := func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) }
	var many [][]byte
	for i := range MaxSignatures + 1 {
		many = append(many, small(i))
	}
	big := func(i int) []byte { return append(small(i), strings.Repeat(" ", 9<<20)...) }
	for _, tc := range []struct {
		name     string
		payloads [][]byte
		want     string
	}{
		{"count", many, fmt.Sprintf("more than %d signatures", MaxSignatures)},
		{"bytes", [][]byte{big(0), big(1), big(2), big(3)}, fmt.Sprintf("signatures over %d bytes", MaxSignatureBytes)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d := sigSeed(t, tc.payloads...)
			_, err := s.Signatures(context.Background(), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "image "+d.String()) ||
				!errdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v; want one line naming image %s: %q", err, d, tc.want)
			}
		})
	}
}

// More signature manifests for an image than it may have signatures
// (each read whole even when it holds none) are refused too: a seed of
// thousands of images cannot make each read thousands of them.
func TestSignatureManifestsCap(t *testing.T) {
	b := build(t, testseed.Image{Name: "registry.local/sig/img:1", Layers: []testseed.Layer{{Files: []testseed.File{{Name: "f", Content: []byte(t.Name())}}}}})
	var s testseed.Seed
	s.Add(b.Name, b.Manifest, b.Blobs)
	cfg := []byte("{}")
	for i := range MaxSignatures + 1 {
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
			Annotations: map[string]string{"n": fmt.Sprint(i)}}
		mb, _ := json.Marshal(m)
		md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		s.Add(fmt.Sprintf("registry.local/sig/r%d:%s", i, SigTag(b.Manifest.Digest)), md, map[digest.Digest][]byte{md.Digest: mb, digest.FromBytes(cfg): cfg})
	}
	seed := openSeed(t, (&fixture{seed: s}).write(t, "oci-tar"))
	_, err := seed.Signatures(context.Background(), b.Manifest.Digest)
	want := fmt.Sprintf("image %s: %d signature manifests, more than the %d signatures", b.Manifest.Digest, MaxSignatures+1, MaxSignatures)
	if err == nil || !strings.Contains(err.Error(), want) || !errdefs.IsInvalidArgument(err) {
		t.Errorf("error %v; want %q", err, want)
	}
}
