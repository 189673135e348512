package plugin_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	"github.com/pelletier/go-toml/v2"
)

// pluginConfig turns the repo's config.toml into a harness config
// template: the same file, with root, state, temp and both sockets moved
// into the daemon's temp dir, host paths (opt, NRI) kept out of the host,
// and seeds_dir set. It also returns the importer's section as parsed, so
// the test checks what the shipped config asks for.
func pluginConfig(t *testing.T, seedsDir string) (path string, section map[string]any) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(moduleRoot, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(src, &cfg); err != nil {
		t.Fatalf("config.toml: %v", err)
	}
	if v, _ := cfg["version"].(int64); v != 4 {
		t.Fatalf("config.toml: version = %v, want 4", cfg["version"])
	}
	plugins, _ := cfg["plugins"].(map[string]any)
	table := func(name string) map[string]any {
		m, ok := plugins[name].(map[string]any)
		if !ok {
			t.Fatalf("config.toml has no [plugins.%q] table", name)
		}
		return m
	}
	set := func(m map[string]any, key string, v any) {
		if _, ok := m[key]; !ok {
			t.Fatalf("config.toml: key %q missing (have %v)", key, slices.Sorted(maps.Keys(m)))
		}
		m[key] = v
	}
	set(cfg, "root", "{{.Root}}")
	set(cfg, "state", "{{.State}}")
	cfg["temp"] = "{{.Dir}}/tmp"
	set(table("io.containerd.server.v1.grpc"), "address", "{{.Address}}")
	set(table("io.containerd.server.v1.ttrpc"), "address", "{{.Address}}.ttrpc")
	section = table(pluginID)
	set(section, "seeds_dir", seedsDir)
	plugins["io.containerd.internal.v1.opt"] = map[string]any{"path": "{{.Dir}}/opt"}
	plugins["io.containerd.nri.v1.nri"] = map[string]any{"socket_path": "{{.Dir}}/nri.sock"}

	out, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "config.toml.tmpl")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, section
}

// wantLabels are the labels every imported image must carry: the
// config's, the pin, and CRI's "managed" mark in k8s.io.
func wantLabels(t *testing.T, section map[string]any) map[string]string {
	t.Helper()
	l := map[string]string{}
	if m, ok := section["labels"].(map[string]any); ok {
		for k, v := range m {
			l[k] = fmt.Sprint(v)
		}
	}
	if len(l) == 0 {
		t.Fatalf("config.toml's importer section sets no labels: nothing to check")
	}
	if section["pin"] != true {
		t.Fatalf("config.toml: pin = %v; this test expects the shipped config to pin", section["pin"])
	}
	l[labelPinned] = "pinned"
	if section["namespace"] == "k8s.io" {
		l[labelManaged] = "managed"
	}
	return l
}

// TestPlugin runs containerd-seed from the repo's config.toml with CRI on:
// boot import of good and bad seeds, seeds dropped in while running, and
// the state across a restart.
func TestPlugin(t *testing.T) {
	t.Parallel()
	seeds := filepath.Join(t.TempDir(), "seeds")
	if err := os.Mkdir(seeds, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath, section := pluginConfig(t, seeds)
	ns, _ := section["namespace"].(string)
	if ns != "k8s.io" {
		t.Fatalf("config.toml: namespace = %q, want k8s.io (where CRI looks)", ns)
	}
	labels := wantLabels(t, section)

	// Boot seeds: one OCI tar, one docker save tar gzipped as a whole, one
	// whose unique layer has a flipped byte.
	ociImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-oci:1", false, testseed.Gzip)
	dockerImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-docker:1", true, testseed.Gzip)
	badImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-bad:1", false, testseed.Gzip)
	corrupt(badImg)
	const (
		seedOCI    = "a-oci.tar"
		seedDocker = "b-docker.tar.gz"
		seedBad    = "c-corrupt.tar"
		seedDrop   = "d-dropped.tar.zst"
		seedSlow   = "e-slow.tar"
	)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(seeds, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(seedOCI, ociSeed(t, ociImg, testseed.Uncompressed))
	write(seedDocker, dockerSeed(t, "ctrseed-test/plugin-docker:1", dockerImg, testseed.Gzip))
	write(seedBad, ociSeed(t, badImg, testseed.Uncompressed))
	good := []string{ociImg.Name, dockerImg.Name}

	start := time.Now()
	d := harness.StartDaemon(t, harness.DaemonOptions{Binary: containerdSeed, ConfigFile: cfgPath})
	t.Logf("containerd-seed ready in %v", time.Since(start).Round(time.Millisecond))
	c := d.Client(t)
	pluginRoot := filepath.Join(d.Root, pluginID)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd-seed log tail:\n%s", tail(d.Log(), 60))
		}
	})

	if !t.Run("boot", func(t *testing.T) {
		took := waitFor(t, importWait, "good seeds imported", func() error {
			return checkImages(c, ns, good, labels)
		})
		t.Logf("good images in %s, pinned, labelled and unpacked %v after ready", ns, took.Round(time.Millisecond))
		waitFor(t, importWait, "bad seed reported", func() error {
			if len(errorLines(lastRun(d.Log()), seedBad)) == 0 {
				return fmt.Errorf("no level=error line for %s", seedBad)
			}
			return nil
		})
		log := lastRun(d.Log())
		for _, s := range []string{seedOCI, seedDocker} {
			if n := imported(log, s); n != 1 {
				t.Errorf("%d \"seed imported\" lines for %s, want 1", n, s)
			}
			if el := errorLines(log, s); len(el) > 0 {
				t.Errorf("error lines for good seed %s:\n%s", s, strings.Join(el, "\n"))
			}
		}
		var mismatch bool
		for _, l := range errorLines(log, seedBad) {
			mismatch = mismatch || strings.Contains(l, "digest mismatch")
		}
		if !mismatch {
			t.Errorf("no level=error line names %s with \"digest mismatch\":\n%s", seedBad, strings.Join(errorLines(log, seedBad), "\n"))
		}
		if n := imported(log, seedBad); n != 0 {
			t.Errorf("corrupt seed logged as imported %d times", n)
		}
		if names := imageNames(t, c, ns); slices.Contains(names, badImg.Name) {
			t.Errorf("image %s from the corrupt seed exists: %v", badImg.Name, names)
		}
		assertNoLeases(t, c, ns)

		took = waitFor(t, 10*time.Second, "CRI lists the imported images", func() error {
			return criHas(d.Address, good)
		})
		t.Logf("CRI ListImages lists both, pinned, %v later", took.Round(time.Millisecond))
		if imgs, err := criImages(d.Address); err != nil {
			t.Error(err)
		} else if _, ok := imgs[badImg.Name]; ok {
			t.Errorf("CRI lists %s from the corrupt seed", badImg.Name)
		}
		if _, err := c.Version(nsCtx(ns)); err != nil {
			t.Errorf("daemon stopped serving: %v", err)
		}
	}) {
		t.FailNow()
	}

	dropImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-dropped:1", false, testseed.Zstd)
	slowImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-slow:1", false, testseed.Gzip)
	if !t.Run("watch", func(t *testing.T) {
		dropIn(t, seeds, seedDrop, ociSeed(t, dropImg, testseed.Zstd))
		writeSlowly(t, filepath.Join(seeds, seedSlow), ociSeed(t, slowImg, testseed.Uncompressed), 2*time.Second)
		closed := time.Now()
		both := []string{dropImg.Name, slowImg.Name}
		waitFor(t, importWait, "dropped-in seeds imported", func() error {
			return checkImages(c, ns, both, labels)
		})
		waitFor(t, importWait, "dropped-in seeds logged", func() error {
			log := lastRun(d.Log())
			for _, s := range []string{seedDrop, seedSlow} {
				if imported(log, s) == 0 {
					return fmt.Errorf("no \"seed imported\" line for %s", s)
				}
			}
			return nil
		})
		t.Logf("slow seed imported %v after it was closed", time.Since(closed).Round(time.Millisecond))
		// Give a second import (there must be none) time to show: several
		// quiet periods.
		time.Sleep(2 * time.Second)
		log := lastRun(d.Log())
		for _, s := range []string{seedDrop, seedSlow} {
			if n := imported(log, s); n != 1 {
				t.Errorf("%d \"seed imported\" lines for %s, want exactly 1:\n%s", n, s, strings.Join(seedLines(log, "", "seed imported", s), "\n"))
			}
			if el := errorLines(log, s); len(el) > 0 {
				t.Errorf("error lines for %s (read before it was complete?):\n%s", s, strings.Join(el, "\n"))
			}
		}
		if strings.Contains(log, "seed=."+seedDrop) || strings.Contains(log, `seed=".`+seedDrop) {
			t.Errorf("the hidden temp name of %s was looked at:\n%s", seedDrop, log)
		}
		for _, s := range []string{seedOCI, seedDocker} {
			if n := imported(log, s); n != 1 {
				t.Errorf("boot seed %s imported %d times by now, want 1", s, n)
			}
		}
		if err := criHas(d.Address, both); err != nil {
			t.Error(err)
		}
	}) {
		t.FailNow()
	}

	t.Run("restart", func(t *testing.T) {
		start := time.Now()
		d.Restart(t)
		t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
		all := []string{ociImg.Name, dockerImg.Name, dropImg.Name, slowImg.Name}
		// Records and pins are containerd's own metadata: there at once.
		if err := checkImages(c, ns, all, labels); err != nil {
			t.Errorf("after restart: %v", err)
		}
		waitFor(t, 10*time.Second, "CRI lists the images after restart", func() error {
			return criHas(d.Address, all)
		})

		// A new version of the last seed (in name order): once it is
		// imported, the boot pass has been over every other seed.
		slow2 := uniqueImage(t, "docker.io/ctrseed-test/plugin-slow:2", false, testseed.Gzip)
		dropIn(t, seeds, seedSlow, ociSeed(t, slow2, testseed.Gzip))
		waitFor(t, importWait, "replaced seed imported", func() error {
			if imported(lastRun(d.Log()), seedSlow) == 0 {
				return fmt.Errorf("no \"seed imported\" line for replaced %s since restart", seedSlow)
			}
			return checkImage(c, ns, slow2.Name, labels)
		})
		time.Sleep(time.Second)
		log := lastRun(d.Log())
		for _, s := range []string{seedOCI, seedDocker, seedDrop} {
			if n := imported(log, s); n != 0 {
				t.Errorf("unchanged seed %s imported again after restart (%d lines):\n%s", s, n, strings.Join(seedLines(log, "", "seed imported", s), "\n"))
			}
		}
		if n := imported(log, seedSlow); n != 1 {
			t.Errorf("replaced seed %s: %d \"seed imported\" lines since restart, want 1", seedSlow, n)
		}
		if len(errorLines(log, seedBad)) == 0 {
			t.Errorf("corrupt seed %s not retried (no error line) at boot", seedBad)
		}
		assertState(t, pluginRoot, map[string][]string{
			seedOCI:    {ociImg.Name},
			seedDocker: {dockerImg.Name},
			seedDrop:   {dropImg.Name},
			seedSlow:   {slow2.Name},
		})
		if s := readState(t, pluginRoot); s.Seeds[seedBad].Error == "" {
			t.Errorf("state.json: corrupt seed %s not recorded as failed", seedBad)
		}

		// Touched (same bytes, new mtime): imported again.
		now := time.Now()
		if err := os.Chtimes(filepath.Join(seeds, seedOCI), now, now); err != nil {
			t.Fatal(err)
		}
		waitFor(t, importWait, "touched seed imported again", func() error {
			if imported(lastRun(d.Log()), seedOCI) == 0 {
				return fmt.Errorf("no \"seed imported\" line for touched %s since restart", seedOCI)
			}
			return nil
		})

		// Removed, then re-added unchanged: imported again.
		aside := filepath.Join(t.TempDir(), seedDrop)
		if err := os.Rename(filepath.Join(seeds, seedDrop), aside); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "removed seed forgotten", func() error {
			if _, ok := readState(t, pluginRoot).Seeds[seedDrop]; ok {
				return fmt.Errorf("state.json still lists %s", seedDrop)
			}
			return nil
		})
		if err := os.Rename(aside, filepath.Join(seeds, seedDrop)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, importWait, "re-added seed imported again", func() error {
			if imported(lastRun(d.Log()), seedDrop) == 0 {
				return fmt.Errorf("no \"seed imported\" line for re-added %s since restart", seedDrop)
			}
			return nil
		})

		if err := checkImages(c, ns, append(all, slow2.Name), labels); err != nil {
			t.Error(err)
		}
		if err := criHas(d.Address, append(all, slow2.Name)); err != nil {
			t.Error(err)
		}
		assertNoLeases(t, c, ns)
		if _, err := c.Version(nsCtx(ns)); err != nil {
			t.Errorf("daemon stopped serving: %v", err)
		}
	})
}
