package fetcher

import (
	"context"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"application/vnd.oci.image.manifest.v1+json": "application/vnd.oci.image.manifest.v1+json",
		"linux/amd64":        "linux/amd64",
		"":                   "",
		"a b":                `"a b"`,
		"linux\n\x1b[2K":     `"linux\n\x1b[2K"`,
		"x\a\r":              `"x\a\r"`,
		"\xff":               `"\xff"`,
		"registry.local/ü:1": "registry.local/ü:1",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %s, want %s", in, got, want)
		}
	}
}

// A delta seed's list of what it leaves out holds digests only: anything
// else there (a newline, an escape sequence) is no blob, never printed
// by verify --node as one.
func TestDeltaOmittedDigestsOnly(t *testing.T) {
	b := build(t, testseed.Image{Name: "registry.local/delta/img:1", Layers: []testseed.Layer{{Files: []testseed.File{{Name: "f", Content: []byte(t.Name())}}}}})
	var s testseed.Seed
	good := digest.FromString("left out")
	m := b.Manifest
	m.Annotations = map[string]string{AnnotationDeltaOmitted: good.String() + ",sha256:x\n\x1b[2Kwrote,"}
	s.Add(b.Name, m, b.Blobs)
	seed := openSeed(t, (&fixture{seed: s}).write(t, "oci-tar"))
	if got := seed.Omitted(context.Background()); len(got) != 1 || got[0] != good {
		t.Errorf("omitted %q, want only %s", got, good)
	}
}
