package fetcher

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func readAll(t testing.TB, s interface {
	Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
}, desc ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := s.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatalf("fetch %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", desc.Digest, err)
	}
	return b
}

func TestOCIFormats(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, format := range []string{"oci-tar", "oci-tar.gz", "oci-tar.zst", "oci-dir"} {
		t.Run(format, func(t *testing.T) {
			s := openSeed(t, f.write(t, format))
			imgs, err := s.Images(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, img := range imgs {
				names = append(names, img.Name)
			}
			want := []string{"docker.io/library/demo:1.0", "registry.local/multi:2", "v3"}
			if len(names) != 3 || names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
				t.Fatalf("names %q, want %q", names, want)
			}
			ps, err := Platforms(ctx, s, imgs[1].Target)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatPlatforms(ps); got != "linux/amd64,linux/arm64/v8" {
				t.Fatalf("platforms %q", got)
			}
			// Every blob of every image is served, byte for byte.
			for d, b := range f.blobs {
				size, ok := s.Has(d)
				if !ok || size != int64(len(b)) {
					t.Fatalf("Has(%s) = %d, %v", d, size, ok)
				}
				if got := readAll(t, s, ocispec.Descriptor{Digest: d, Size: int64(len(b))}); !bytes.Equal(got, b) {
					t.Fatalf("blob %s differs", d)
				}
			}
			if errs := s.Verify(ctx, layerlimit.Default()); len(errs) != 0 {
				t.Fatalf("verify: %v", errs)
			}
		})
	}
}

func TestResolveAndPlatform(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	seeds := Seeds{openSeed(t, f.write(t, "oci-tar"))}
	r := NewResolver(seeds, nil)
	name, desc, err := r.Resolve(ctx, "registry.local/multi:2")
	if err != nil {
		t.Fatal(err)
	}
	if name != "registry.local/multi:2" || desc.Digest != f.multi.Digest || desc.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("resolved %s %v", name, desc)
	}
	for i, p := range []ocispec.Platform{amd64, arm64} {
		m, err := images.Manifest(ctx, seeds, desc, platforms.Only(p))
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.Digest != f.kids[i].Config.Digest {
			t.Fatalf("%s: config %s, want %s", platforms.Format(p), m.Config.Digest, f.kids[i].Config.Digest)
		}
	}
	if _, _, err := r.Resolve(ctx, "demo"); err == nil {
		t.Fatal("demo (:latest) resolved, but only demo:1.0 is in the seed")
	}
	_, desc, err = r.Resolve(ctx, "demo:1.0")
	if err != nil || desc.Digest != f.demo.Manifest.Digest {
		t.Fatalf("demo:1.0: %v %v", desc, err)
	}
	if _, _, err := r.Resolve(ctx, "docker.io/library/demo@"+digest.FromString("x").String()); err == nil {
		t.Fatal("a wrong digest pin resolved")
	}
	_, desc, err = r.Resolve(ctx, "any.registry/whatever:v3")
	if err != nil || desc.Digest != f.tagged.Manifest.Digest {
		t.Fatalf("tag-only v3: %v %v", desc, err)
	}
	fe, err := r.Fetcher(ctx, "demo:1.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range f.demo.Layers {
		if got := readAll(t, fe, l); !bytes.Equal(got, f.blobs[l.Digest]) {
			t.Fatalf("layer %s differs", l.Digest)
		}
	}
	if _, err := fe.Fetch(ctx, ocispec.Descriptor{Digest: digest.FromString("nope"), Size: 4}); err == nil {
		t.Fatal("offline fetch of an absent blob succeeded")
	}
}
