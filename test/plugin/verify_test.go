package plugin_test

import (
	"fmt"
	"github.com/BurntSushi/toml"
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

// TestPluginConfigTypoFailsClosed: a misspelt key in the plugin's table
// (verify_key for verify_keys) is no mere "ignoring unknown key" warning
// after which every seed imports unverified: the plugin refuses its
// config, as serve refuses the same file. No seed is imported; one error
// line names the key; containerd keeps serving.
func TestPluginConfigTypoFailsClosed(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	img := uniqueImage(t, "docker.io/ctrseed-test/typo-unsigned:1", false, testseed.Gzip)
	os.WriteFile(filepath.Join(seeds, "unsigned.tar"), ociSeed(t, img, testseed.Uncompressed), 0o644)
	cfgPath, section := pluginConfig(t, seeds, nil)
	// The typo: a key config.toml does not have.
	var cfg map[string]any
	if _, err := toml.DecodeFile(cfgPath, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["plugins"].(map[string]any)[pluginID].(map[string]any)["verify_key"] = []string{filepath.Join(t.TempDir(), "cosign.pub")}
	out, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	// containerd loads its plugins before it serves: once it answers, the
	// importer's init is over, and its service would have started.
	d := harness.StartDaemon(t, harness.DaemonOptions{Binary: containerdSeed, ConfigFile: cfgPath, DisableCRI: true})
	c := d.Client(t)
	ns, _ := section["namespace"].(string)
	if _, err := c.Version(nsCtx(ns)); err != nil {
		t.Fatalf("daemon not serving: %v", err)
	}
	log := lastRun(d.Log())
	var errs []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=error") && strings.Contains(l, "verify_key") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 {
		t.Errorf("error lines naming verify_key: %q; want one", errs)
	}
	if strings.Contains(log, `msg="watching seeds dir"`) || strings.Contains(log, "seeds dir not there") {
		t.Errorf("the seeds-directory service started despite the unknown key:\n%s", tail(log, 40))
	}
	if names := imageNames(t, c, ns); len(names) != 0 {
		t.Errorf("images %v; want none (a config with an unknown key imports nothing)", names)
	}
}
