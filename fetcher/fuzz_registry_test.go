package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// echoRegistry serves every blob it is asked for as the same bytes: what a
// hostile registry answers. It resolves nothing.
type echoRegistry struct{ body []byte }

func (e echoRegistry) Resolve(context.Context, string) (string, ocispec.Descriptor, error) {
	return "", ocispec.Descriptor{}, errdefs.ErrNotFound
}

func (e echoRegistry) Fetcher(context.Context, string) (remotes.Fetcher, error) { return e, nil }

func (e echoRegistry) Pusher(context.Context, string) (remotes.Pusher, error) {
	return nil, errdefs.ErrNotImplemented
}

func (e echoRegistry) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(e.body)), nil
}

// FuzzRegistryManifest: a manifest from a registry (any bytes) names the
// blobs that are fetched next; fetching and verifying each of them, and
// checking it against the seeds, fails with an error or succeeds, never
// panics (a digest without ':' once did, in the verifier).
func FuzzRegistryManifest(f *testing.F) {
	good, _ := json.Marshal(ocispec.Manifest{Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("{}"), Size: 2},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: "deadbeef", Size: 3}}})
	f.Add(good)
	f.Add([]byte(`{"config":{"digest":"sha256:","size":-1},"layers":[{"digest":":","size":9}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"md5:00","size":1}]}`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		var doc struct {
			Config    ocispec.Descriptor
			Layers    []ocispec.Descriptor
			Manifests []ocispec.Descriptor
		}
		if json.Unmarshal(b, &doc) != nil {
			return
		}
		descs := append(append([]ocispec.Descriptor{doc.Config}, doc.Layers...), doc.Manifests...)
		r := NewResolver(nil, echoRegistry{body: b})
		fe, err := r.Fetcher(ctx, "registry.local/fuzz:1")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range descs {
			_, _ = Seeds(nil).Check(d)
			rc, err := fe.Fetch(ctx, d)
			if err != nil {
				continue
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err == nil && (digest.FromBytes(b) != d.Digest || int64(len(b)) != d.Size) {
				t.Fatalf("blob %q of %d bytes served as verified, but it is %s of %d", d.Digest, d.Size, digest.FromBytes(b), len(b))
			}
		}
	})
}
