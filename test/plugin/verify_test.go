package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestPluginVerifyKeys: with verify_keys, of a signed and an unsigned seed
// dropped in, only the signed image appears; the log names the unsigned
// one in one error line; the daemon keeps serving.
func TestPluginVerifyKeys(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	work := t.TempDir()
	harness.CosignRun(t, work, "generate-key-pair")
	layouts := map[string]string{}
	for _, n := range []string{"signed", "unsigned"} {
		b := uniqueImage(t, "docker.io/ctrseed-test/verify-"+n+":1", false, testseed.Gzip)
		if err := reg.Push(t.Context(), "library/"+n, "1", b.Manifest, b.Blobs); err != nil {
			t.Fatal(err)
		}
		if n == "signed" {
			harness.CosignRun(t, work, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "-y", reg.Host+"/library/signed@"+b.Manifest.Digest.String())
		}
		layouts[n] = filepath.Join(work, n)
		harness.CosignRun(t, work, "save", "--allow-http-registry", "--dir", layouts[n], reg.Host+"/library/"+n+":1")
	}
	seeds := newSeedsDir(t)
	pd := startPluginWith(t, seeds, harness.DaemonOptions{DisableCRI: true},
		map[string]any{"verify_keys": []string{filepath.Join(work, "cosign.pub")}, "verify_ignore_identity": true})
	for n, dir := range layouts {
		// A layout directory, renamed into place.
		if err := os.Rename(dir, filepath.Join(seeds, n)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, importWait, "both seeds done", func() error {
		if imported(pd.d.Log(), "signed") == 0 || len(errorLines(pd.d.Log(), "unsigned")) == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	names := imageNames(t, pd.c, pd.ns)
	if len(names) != 1 || !strings.HasPrefix(names[0], "import-") {
		t.Errorf("images %v; want the signed one alone (by digest: cosign's layout names none)", names)
	}
	var refusals []string
	for _, l := range errorLines(pd.d.Log(), "unsigned") {
		if strings.Contains(l, "seed image failed") {
			refusals = append(refusals, l)
		}
	}
	if len(refusals) != 1 || !strings.Contains(refusals[0], "signature: no signature") {
		t.Errorf("error lines for the unsigned seed %q; want one saying it has no signature", errorLines(pd.d.Log(), "unsigned"))
	}
	pd.assertServing(t)
	pd.assertSettled(t)
}
