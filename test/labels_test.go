package test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

// TestReimportKeepsLabels: importing an image again (without --pin, or
// with other labels) adds labels but never drops one — not the pin the
// plugin or an operator set, not another tool's label. containerd's image
// store alone would replace the record's labels wholesale.
func TestReimportKeepsLabels(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "docker.io/ctrseed-test/labels:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Gzip)

	mustImport(t, ns, "--pin", "--label", "first=1", seed)
	ctr(t, ns, "images", "label", b.Name, "operator=mine")
	mustImport(t, ns, "--label", "second=2", seed)

	img, ok := imageMap(t, ns)[b.Name]
	if !ok {
		t.Fatalf("image %s missing", b.Name)
	}
	for k, v := range map[string]string{"io.cri-containerd.pinned": "pinned", "first": "1", "operator": "mine", "second": "2"} {
		if img.Labels[k] != v {
			t.Errorf("label %s = %q after re-import, want %q (labels %v)", k, img.Labels[k], v, img.Labels)
		}
	}
	if img.Target.Digest != b.Manifest.Digest {
		t.Errorf("target %s, want %s", img.Target.Digest, b.Manifest.Digest)
	}
}

// Every imported image says which seed brought it (file name, and the
// digest of the seed's index as its version); --digest-refs adds a
// repo@digest record beside the tag, with the same labels.
func TestProvenanceAndDigestRefs(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "docker.io/ctrseed-test/provenance:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	mustImport(t, ns, "--digest-refs", seed)
	imgs := imageMap(t, ns)
	byDigest := "docker.io/ctrseed-test/provenance@" + b.Manifest.Digest.String()
	for _, n := range []string{b.Name, byDigest} {
		img, ok := imgs[n]
		if !ok {
			t.Errorf("no image %s in %v", n, keys(imgs))
			continue
		}
		if img.Labels["io.ctr-seed.seed"] != filepath.Base(seed) || !strings.HasPrefix(img.Labels["io.ctr-seed.seed.version"], "sha256:") {
			t.Errorf("%s: labels %v; want io.ctr-seed.seed=%s and a version", n, img.Labels, filepath.Base(seed))
		}
		if img.Target.Digest != b.Manifest.Digest {
			t.Errorf("%s: target %s", n, img.Target.Digest)
		}
	}
	// Without the flag: the tag alone.
	ns2 := namespace(t) + "-plain"
	mustImport(t, ns2, seed)
	if _, ok := imageMap(t, ns2)[byDigest]; ok {
		t.Errorf("a digest ref without --digest-refs")
	}
}
