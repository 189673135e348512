package test

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// snapshotChain lists the committed snapshots of ns as "key<-parent".
func snapshotChain(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	err := dclient(t).SnapshotService("overlayfs").Walk(nsCtx(ns), func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindCommitted {
			out = append(out, i.Name+"<-"+i.Parent)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// parityCase imports the same seed with ctr and with ctr-seed, with the
// same flags, into two namespaces, and compares what each left.
func parity(t *testing.T, seed string, flags ...string) {
	t.Helper()
	nsCtr, nsSeed := namespace(t)+"-ctr", namespace(t)+"-seed"
	ctr(t, nsCtr, append(append([]string{"images", "import"}, flags...), seed)...)
	mustImport(t, nsSeed, append(flags, seed)...)

	want, got := imageMap(t, nsCtr), imageMap(t, nsSeed)
	// ctr names an index entry for another platform than the imported
	// ones without importing any of its content; ctr-seed leaves such an
	// entry out (a record nothing can run) and says so.
	if !slices.Contains(flags, "--all-platforms") {
		other := otherPlatformEntries(t, seed, parityPlatforms(flags))
		for name, w := range want {
			if other[w.Target.Digest] {
				delete(want, name)
			}
		}
	}
	wantNames, gotNames := keys(want), keys(got)
	if !slices.Equal(wantNames, gotNames) {
		t.Fatalf("image names differ:\nctr:      %q\nctr-seed: %q", wantNames, gotNames)
	}
	if len(wantNames) == 0 {
		t.Fatal("ctr created no image: the case proves nothing")
	}
	for name, w := range want {
		g := got[name]
		if g.Target.Digest != w.Target.Digest || g.Target.MediaType != w.Target.MediaType || g.Target.Size != w.Target.Size {
			t.Errorf("%s: target %v, ctr's %v", name, g.Target, w.Target)
		}
		if !maps.Equal(g.Target.Annotations, w.Target.Annotations) {
			t.Errorf("%s: target annotations %v, ctr's %v", name, g.Target.Annotations, w.Target.Annotations)
		}
	}
	if w, g := snapshotChain(t, nsCtr), snapshotChain(t, nsSeed); !slices.Equal(w, g) {
		t.Errorf("committed snapshots differ:\nctr:      %s\nctr-seed: %s\nctr images:\n%s\nctr-seed images:\n%s",
			strings.Join(w, "\n          "), strings.Join(g, "\n          "),
			ctr(t, nsCtr, "images", "ls"), ctr(t, nsSeed, "images", "ls"))
	}
}

func TestParityWithCtr(t *testing.T) {
	// One seed with a named image, a two-platform index and a tag-only
	// entry; one docker save tarball with two tags and shared layers.
	mk := func(t *testing.T) (oci, docker string) {
		demo := uniqueImage(t, "docker.io/library/demo:1.0", amd64, false, testseed.Gzip)
		a := uniqueImage(t, "", amd64, false, testseed.Zstd)
		b := uniqueImage(t, "", arm64, false, testseed.Gzip)
		tagged := uniqueImage(t, "", amd64, false, testseed.Uncompressed)
		idx, blobs, err := indexOf(a, b)
		if err != nil {
			t.Fatal(err)
		}
		var s testseed.Seed
		s.Add("docker.io/library/demo:1.0", demo.Manifest, demo.Blobs)
		s.Add("registry.local/multi:2", idx, blobs)
		s.AddRaw(tagged.Manifest, map[string]string{ocispec.AnnotationRefName: "v3"}, tagged.Blobs)
		oci = writeOCI(t, &s, testseed.Uncompressed)
		docker = writeDocker(t, []testseed.DockerImage{
			{RepoTags: []string{"demo:1.0", "registry.local/demo:latest"}, Built: demo, SymlinkLayers: true},
			{RepoTags: []string{"other:2"}, Built: tagged, SymlinkLayers: true},
		}, testseed.Uncompressed)
		return oci, docker
	}
	for _, tc := range []struct {
		name   string
		docker bool
		flags  []string
	}{
		{"oci-default", false, nil},
		{"oci-base-name", false, []string{"--base-name", "registry.local/app"}},
		{"oci-digests", false, []string{"--digests", "--base-name", "registry.local/app"}},
		{"oci-index-name", false, []string{"--index-name", "registry.local/bundle:all"}},
		{"oci-all-platforms", false, []string{"--all-platforms"}},
		{"oci-platform-arm64", false, []string{"--platform", "linux/arm64"}},
		{"oci-no-unpack", false, []string{"--no-unpack"}},
		{"docker-default", true, nil},
		{"docker-digests", true, []string{"--digests"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oci, docker := mk(t)
			seed := oci
			if tc.docker {
				seed = docker
			}
			parity(t, seed, tc.flags...)
		})
	}
}

func indexOf(imgs ...*testseed.Built) (ocispec.Descriptor, map[digestKey][]byte, error) {
	return indexFromBuilt(imgs...)
}

// parityPlatforms is what --platform flags (or the host) import.
func parityPlatforms(flags []string) platforms.MatchComparer {
	var ps []ocispec.Platform
	for i, f := range flags {
		if f == "--platform" && i+1 < len(flags) {
			ps = append(ps, platforms.MustParse(flags[i+1]))
		}
	}
	if len(ps) == 0 {
		return platforms.Default()
	}
	return platforms.Ordered(ps...)
}

// otherPlatformEntries are the top-level entries of seed whose descriptor
// names a platform m does not match.
func otherPlatformEntries(t *testing.T, seed string, m platforms.MatchComparer) map[digest.Digest]bool {
	t.Helper()
	s, err := fetcher.Open(context.Background(), seed)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	imgs, err := s.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, img := range imgs {
		if p := img.Target.Platform; p != nil && !m.Match(*p) {
			out[img.Target.Digest] = true
		}
	}
	return out
}
