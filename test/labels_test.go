package test

import (
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
