package test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// A layout `cosign save` wrote (an image signed with a key, pushed to a
// real registry, saved with its signatures) is a seed: the image, which
// the layout does not name, imports under its digest, unpacked; the
// signature entry is skipped, said so.
func TestCosignSaveLayout(t *testing.T) {
	b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
	reg := testregistry.Start(t, testregistry.Options{})
	if err := reg.Push(t.Context(), "library/signed", "1", b.Manifest, b.Blobs); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ref := reg.Host + "/library/signed@" + b.Manifest.Digest.String()
	harness.CosignRun(t, work, "generate-key-pair")
	harness.CosignRun(t, work, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "-y", ref)
	layout := filepath.Join(work, "saved")
	harness.CosignRun(t, work, "save", "--allow-http-registry", "--dir", layout, reg.Host+"/library/signed:1")

	ls := ctrSeedRun(t, namespace(t), "ls", layout)
	if ls.code != 0 || !strings.Contains(ls.stdout, "<none>@"+b.Manifest.Digest.String()) || !strings.Contains(ls.stdout, "(dev.cosignproject.cosign/sigs)") {
		t.Errorf("ls of cosign's layout: exit %d\n%s%s", ls.code, ls.stdout, ls.stderr)
	}
	ns := namespace(t)
	r := mustImport(t, ns, layout)
	want := "import-" + time.Now().Format("2006-01-02") + "@" + b.Manifest.Digest.String()
	imgs := imageMap(t, ns)
	if len(imgs) != 1 || imgs[want].Target.Digest != b.Manifest.Digest {
		t.Errorf("images %v; want %s alone", keys(imgs), want)
	}
	impAssertUnpacked(t, ns, want)
	if !strings.Contains(r.stdout, "sigs of an image of the seed (dev.cosignproject.cosign/sigs), not an image") {
		t.Errorf("no skipped line for the signatures:\n%s", r.stdout)
	}
}
