package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What `ctr-seed serve` tells a script (an init container, ExecStartPre):
// --once exits 1 when a seed failed, 0 when all landed; config errors and
// stray arguments exit 2; -n picks the namespace over the file's; a file
// that is no archive (a README) is skipped, said once, not an error.
func TestServeOnceExitCodes(t *testing.T) {
	t.Parallel()
	d := harness.StartDaemon(t, harness.DaemonOptions{DisableCRI: true})
	c := d.Client(t)
	tmp := t.TempDir()
	seeds := filepath.Join(tmp, "seeds")
	os.Mkdir(seeds, 0o755)
	cfg := filepath.Join(tmp, "ctr-seed.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("seeds_dir = %s\nnamespace = \"from-file\"\n", strconv.Quote(seeds))), 0o644)
	good := uniqueImage(t, "docker.io/ctrseed-test/once-good:1", false, testseed.Gzip)
	os.WriteFile(filepath.Join(seeds, "good.tar"), ociSeed(t, good, testseed.Uncompressed), 0o644)
	os.WriteFile(filepath.Join(seeds, "README"), []byte("These are the seeds of site 7.\n"), 0o644)
	old := time.Now().Add(-time.Minute)
	for _, n := range []string{"good.tar", "README"} {
		os.Chtimes(filepath.Join(seeds, n), old, old)
	}
	serve := func(args ...string) harness.Result {
		argv := append([]string{ctrSeed, "--address", d.Address}, args...)
		return harness.Start(t, harness.Cmd{Argv: argv, Combined: true}).Wait(t, time.Minute)
	}
	stateDir := filepath.Join(tmp, "state")

	step(t, "all good: exit 0; -n wins over the file; a README is skipped, said once", func(t *testing.T) {
		r := serve("-n", "from-flag", "serve", "--once", "--config", cfg, "--state-dir", stateDir)
		if r.Code != 0 {
			t.Fatalf("serve --once: %s", r)
		}
		if err := checkImage(c, "from-flag", good.Name, nil); err != nil {
			t.Errorf("-n from-flag: %v", err)
		}
		if names := imageNames(t, c, "from-file"); len(names) != 0 {
			t.Errorf("images in the file's namespace despite -n: %v", names)
		}
		if !strings.Contains(r.Stdout, `msg="watching seeds dir"`) || !strings.Contains(r.Stdout, "namespace=from-flag") {
			t.Errorf("no start line naming the dir and namespace:\n%s", r.Stdout)
		}
		if el := errorLines(r.Stdout, "README"); len(el) != 0 || !strings.Contains(r.Stdout, "not an image archive, skipped") {
			t.Errorf("README: error lines %q; output:\n%s", el, r.Stdout)
		}
		r = serve("-n", "from-flag", "serve", "--once", "--config", cfg, "--state-dir", stateDir)
		if r.Code != 0 || strings.Contains(r.Stdout, "not an image archive") {
			t.Errorf("second run: %s; want exit 0 and the README not mentioned again", r)
		}
	})
	step(t, "a seeds dir that is not there: a warning, exit 0", func(t *testing.T) {
		none := filepath.Join(tmp, "none.toml")
		os.WriteFile(none, []byte(fmt.Sprintf("seeds_dir = %s\n", strconv.Quote(filepath.Join(tmp, "absent")))), 0o644)
		r := serve("serve", "--once", "--config", none, "--state-dir", filepath.Join(tmp, "state-none"))
		if r.Code != 0 || strings.Count(r.Stdout, "seeds dir not there") != 1 {
			t.Errorf("%s; want exit 0 and one warning", r)
		}
	})
	step(t, "a bad seed: exit 1", func(t *testing.T) {
		bad := uniqueImage(t, "docker.io/ctrseed-test/once-bad:1", false, testseed.Gzip)
		corrupt(bad)
		os.WriteFile(filepath.Join(seeds, "bad.tar"), ociSeed(t, bad, testseed.Uncompressed), 0o644)
		os.Chtimes(filepath.Join(seeds, "bad.tar"), old, old)
		if r := serve("serve", "--once", "--config", cfg, "--state-dir", stateDir); r.Code != 1 || !strings.Contains(r.Stdout, "1 seed(s)") {
			t.Errorf("serve --once with a corrupt seed: %s; want exit 1", r)
		}
	})
	step(t, "usage errors exit 2", func(t *testing.T) {
		bogus := filepath.Join(tmp, "bogus.toml")
		os.WriteFile(bogus, []byte("seeds_dri = \"/x\"\n"), 0o644)
		args := [][]string{
			{"serve", "--once", "--config", filepath.Join(tmp, "missing.toml"), "--state-dir", stateDir},
			{"serve", "--once", "--config", bogus, "--state-dir", stateDir},
			{"serve", "--once", "--config", cfg, "--state-dir", stateDir, "stray"},
		}
		// Keys the file parses but the service cannot run with: config
		// errors too, not "a seed failed" (1), so an init container can
		// tell a broken config from a bad seed.
		unreadable := filepath.Join(tmp, "unreadable.pub")
		os.Mkdir(unreadable, 0o755) // a directory: reading it fails, as root too
		for i, tc := range []struct{ keys, key string }{
			{fmt.Sprintf("verify_keys = [%s]\n", strconv.Quote(filepath.Join(tmp, "missing.pub"))), "verify_keys"},
			{fmt.Sprintf("verify_keys = [%s]\n", strconv.Quote(unreadable)), "verify_keys"},
			{"verify = \"if-signed\"\n", "verify"},
			{"max_spool_bytes = -1\n", "max_spool_bytes"},
			{"platforms = [\"linux/amd64/v9/extra\"]\n", "platforms"},
		} {
			p := filepath.Join(tmp, fmt.Sprintf("semantic-%d.toml", i))
			os.WriteFile(p, []byte(fmt.Sprintf("seeds_dir = %s\n%s", strconv.Quote(seeds), tc.keys)), 0o644)
			a := []string{"serve", "--once", "--config", p, "--state-dir", stateDir}
			if r := serve(a...); r.Code != 2 || !strings.Contains(r.Stdout, p) || !strings.Contains(r.Stdout, tc.key) {
				t.Errorf("%s: %s; want exit 2 and a line naming the file and %s", strings.TrimSpace(tc.keys), r, tc.key)
			}
		}
		for _, a := range args {
			if r := serve(a...); r.Code != 2 {
				t.Errorf("%v: %s; want exit 2", a, r)
			}
		}
	})
	step(t, "containerd unreachable: exit 1 at once", func(t *testing.T) {
		start := time.Now()
		r := harness.Start(t, harness.Cmd{Argv: []string{ctrSeed, "--address", filepath.Join(tmp, "none.sock"), "serve", "--once", "--config", cfg, "--state-dir", stateDir}, Combined: true}).Wait(t, time.Minute)
		if r.Code != 1 || time.Since(start) > 5*time.Second || !strings.Contains(r.Stdout, "cannot access socket") {
			t.Errorf("%s after %v; want exit 1 at once", r, time.Since(start))
		}
	})
}

// A layout whose entries carry a tag alone (umoci's, ref.name "1.35"):
// without base_name its name is containerd's import-<date>:1.35 and a
// warning says so; with base_name it is BASE:1.35.
func TestServeBaseName(t *testing.T) {
	t.Parallel()
	d := harness.StartDaemon(t, harness.DaemonOptions{DisableCRI: true})
	c := d.Client(t)
	img := uniqueImage(t, "", false, testseed.Gzip)
	var s testseed.Seed
	s.AddRaw(img.Manifest, map[string]string{ocispec.AnnotationRefName: "1.35"}, img.Blobs)
	for _, tc := range []struct {
		base, want string
		warn       bool
	}{
		{"", "import-" + time.Now().Format("2006-01-02") + ":1.35", true},
		{"registry.local/umoci/busybox", "registry.local/umoci/busybox:1.35", false},
	} {
		tmp := t.TempDir()
		seeds := filepath.Join(tmp, "seeds")
		os.Mkdir(seeds, 0o755)
		os.WriteFile(filepath.Join(seeds, "umoci.tar"), archive(t, testseed.Uncompressed, s.WriteOCITar), 0o644)
		old := time.Now().Add(-time.Minute)
		os.Chtimes(filepath.Join(seeds, "umoci.tar"), old, old)
		cfg := filepath.Join(tmp, "ctr-seed.toml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("seeds_dir = %s\nnamespace = %q\nbase_name = %q\n", strconv.Quote(seeds), "base-"+strconv.FormatBool(tc.warn), tc.base)), 0o644)
		r := harness.Start(t, harness.Cmd{Argv: []string{ctrSeed, "--address", d.Address, "serve", "--once", "--config", cfg, "--state-dir", filepath.Join(tmp, "state")}, Combined: true}).Wait(t, time.Minute)
		if r.Code != 0 {
			t.Fatalf("base_name %q: %s", tc.base, r)
		}
		ns := "base-" + strconv.FormatBool(tc.warn)
		if got := imageNames(t, c, ns); len(got) != 1 || got[0] != tc.want {
			t.Errorf("base_name %q: images %v, want [%s]", tc.base, got, tc.want)
		}
		if warned := strings.Contains(r.Stdout, "named by a tag alone"); warned != tc.warn {
			t.Errorf("base_name %q: warned %v, want %v:\n%s", tc.base, warned, tc.warn, r.Stdout)
		}
	}
}
