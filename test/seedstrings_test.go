package test

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Strings a seed sets beside its names (a config's media type, a
// platform's os, an entry's media type, a delta's inventories) reach the
// terminal as names do: escaped (\x1b, \n), never raw, so that a newline
// or an escape sequence forges no line (a fake "imported" line, a
// cleared screen).
func TestSeedStringsEscaped(t *testing.T) {
	const evil = "\x1b[2K\rimported docker.io/library/nginx:latest\x07"
	b := uniqueImage(t, "registry.local/strings/img:1", impHostPlatform(), false, testseed.Gzip)
	named := func(d ocispec.Descriptor) ocispec.Descriptor {
		d.Annotations = map[string]string{images.AnnotationImageName: b.Name}
		return d
	}
	seedOf := func(t *testing.T, entry ocispec.Descriptor, skip digest.Digest) string {
		var blobs []impRawEntry
		for d, p := range b.Blobs {
			if d != skip {
				blobs = append(blobs, impBlobEntry(d, p))
			}
		}
		return impWriteBytes(t, "strings.tar", impLayoutWith(t, []ocispec.Descriptor{entry}, blobs...))
	}
	for _, tc := range []struct {
		name string
		seed func(t *testing.T) string
		cmds []string
	}{
		{"config-media-type", func(t *testing.T) string {
			seed, _ := hardEditedSeed(t, b, func(m *ocispec.Manifest) { m.Config.MediaType = "application/x" + evil })
			return seed
		}, []string{"import"}},
		{"layer-media-type", func(t *testing.T) string {
			seed, _ := hardEditedSeed(t, b, func(m *ocispec.Manifest) {
				m.Layers[0].MediaType += evil
				m.Layers[0].Digest = "sha256:nothex"
			})
			return seed
		}, []string{"import"}},
		{"platform-os", func(t *testing.T) string {
			e := named(b.Manifest)
			e.Platform = &ocispec.Platform{OS: "linux" + evil, Architecture: impHostPlatform().Architecture}
			return seedOf(t, e, "")
		}, []string{"ls", "import"}},
		{"entry-media-type", func(t *testing.T) string {
			e := named(b.Manifest)
			e.MediaType += evil
			return seedOf(t, e, "")
		}, []string{"ls"}},
		{"delta-base", func(t *testing.T) string {
			e := named(b.Manifest)
			top := b.Layers[len(b.Layers)-1].Digest
			e.Annotations[fetcher.AnnotationDeltaOmitted] = top.String()
			e.Annotations[fetcher.AnnotationDeltaBase] = "node.inventory" + evil
			return seedOf(t, e, top)
		}, []string{"import"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := tc.seed(t)
			for _, cmd := range tc.cmds {
				r := ctrSeedRun(t, namespace(t), cmd, seed)
				out := r.stdout + r.stderr
				if strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `\x1b[2K\rimported docker.io/library/nginx:latest\a`) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want the seed's string escaped, never raw", cmd, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}
