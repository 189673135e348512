package fetcher

import (
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func entryDesc(d digest.Digest, imageName, refName string) ocispec.Descriptor {
	a := map[string]string{}
	if imageName != "" {
		a[images.AnnotationImageName] = imageName
	}
	if refName != "" {
		a[ocispec.AnnotationRefName] = refName
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 1, Annotations: a}
}

func TestPick(t *testing.T) {
	var (
		dA = digest.FromString("a")
		dB = digest.FromString("b")
		dC = digest.FromString("c")
		dD = digest.FromString("d")
	)
	s1, s2 := &Seed{path: "one"}, &Seed{path: "two"}
	cands := []candidate{
		{seed: s1, desc: entryDesc(dA, "docker.io/library/alpine:3.20", "3.20")},
		{seed: s1, desc: entryDesc(dB, "", "registry.local/app:v1")},
		{seed: s1, desc: entryDesc(dC, "", "v2")},
		{seed: s2, desc: entryDesc(dD, "", "v3")},
		{seed: s2, desc: entryDesc(dA, "", "v3")},
		{seed: s2, desc: entryDesc(dB, "", "latest")},
		{seed: s2, desc: entryDesc(dC, "", ""), repoTag: []string{"busybox:1.36"}},
		// a ref.name that would match "alpine:3.20" by tag must lose to the image name
		{seed: s2, desc: entryDesc(dD, "", "3.20")},
	}
	tests := []struct {
		ref     string
		want    digest.Digest
		wantErr error
	}{
		{"alpine:3.20", dA, nil},
		{"docker.io/library/alpine:3.20", dA, nil},
		{"alpine@" + dA.String(), dA, nil},
		{"alpine:3.20@" + dA.String(), dA, nil},
		{"alpine@" + dB.String(), dB, nil}, // tag-only entry pinned by digest
		{"registry.local/app:v1", dB, nil},
		{"registry.local/app", dB, nil}, // :latest → tag-only "latest" of seed two
		{"anything:v2", dC, nil},        // tag alone, unambiguous
		{"anything:v3", "", errdefs.ErrFailedPrecondition},
		{"busybox:1.36", dC, nil},
		{"docker.io/library/busybox:1.36", dC, nil},
		{"busybox:1.37", "", errdefs.ErrNotFound},
		{"alpine:3.19", "", errdefs.ErrNotFound},
		{"registry.local/app@" + dA.String(), dA, nil}, // pinned: tag-only entries with that digest
		{"other.registry/x:3.20", dD, nil},             // "3.20" alone: the ctr-export entry of alpine does not count
		{"UPPER:case", "", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			q, err := parseQuery(tt.ref)
			if err == nil {
				var c candidate
				c, err = pick(q, cands)
				if err == nil && c.desc.Digest != tt.want {
					t.Fatalf("picked %s, want %s", c.desc.Digest, tt.want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != nil && !errdefsIs(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func errdefsIs(err, target error) bool {
	switch target {
	case errdefs.ErrNotFound:
		return errdefs.IsNotFound(err)
	case errdefs.ErrFailedPrecondition:
		return errdefs.IsFailedPrecondition(err)
	case errdefs.ErrInvalidArgument:
		return errdefs.IsInvalidArgument(err)
	}
	return false
}

func TestName(t *testing.T) {
	d := digest.FromString("x")
	for _, tt := range []struct {
		desc ocispec.Descriptor
		tags []string
		want string
	}{
		{entryDesc(d, "docker.io/library/a:1", "1"), nil, "docker.io/library/a:1"},
		{entryDesc(d, "", "v1"), nil, "v1"},
		{entryDesc(d, "", ""), []string{"busybox:1"}, "docker.io/library/busybox:1"},
		{entryDesc(d, "", ""), nil, ""},
	} {
		if got := Name(tt.desc, tt.tags); got != tt.want {
			t.Errorf("Name = %q, want %q", got, tt.want)
		}
	}
}

func TestCleanNameAndLinks(t *testing.T) {
	for name, ok := range map[string]bool{
		"blobs/sha256/ab": true, "./index.json": true, "a//b/": true,
		"/etc/passwd": false, "../x": false, "a/../../x": false, "a/../b": false, "": false, ".": false,
	} {
		if _, got := cleanName(name); got != ok {
			t.Errorf("cleanName(%q) ok=%v, want %v", name, got, ok)
		}
	}
	for _, tt := range []struct {
		name, link string
		hard       bool
		want       string
	}{
		{"b/layer.tar", "../a/layer.tar", false, "a/layer.tar"},
		{"b/layer.tar", "/etc/shadow", false, ""},
		{"b/layer.tar", "../../etc/shadow", false, ""},
		{"b/layer.tar", "a/layer.tar", true, "a/layer.tar"},
		{"b/layer.tar", "../a", true, ""},
	} {
		if got := linkTarget(tt.name, tt.link, tt.hard); got != tt.want {
			t.Errorf("linkTarget(%q, %q) = %q, want %q", tt.name, tt.link, got, tt.want)
		}
	}
}
