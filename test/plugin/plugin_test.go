package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestPlugin runs containerd-seed from the repo's config.toml with CRI on,
// in steps that build on each other: boot import of good and bad seeds,
// seeds dropped in while running, and the state across a restart.
func TestPlugin(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	// Boot seeds: one OCI tar, one docker save tar gzipped as a whole, one
	// whose unique layer has a flipped byte.
	ociImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-oci:1", false, testseed.Gzip)
	dockerImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-docker:1", true, testseed.Gzip)
	badImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-bad:1", false, testseed.Gzip)
	corrupt(badImg)
	dropImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-dropped:1", false, testseed.Zstd)
	slowImg := uniqueImage(t, "docker.io/ctrseed-test/plugin-slow:1", false, testseed.Gzip)
	slow2 := uniqueImage(t, "docker.io/ctrseed-test/plugin-slow:2", false, testseed.Gzip)
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
	all := []string{ociImg.Name, dockerImg.Name, dropImg.Name, slowImg.Name}

	pd := startPlugin(t, seeds, harness.DaemonOptions{})
	d, c, ns, labels := pd.d, pd.c, pd.ns, pd.labels
	if ns != "k8s.io" {
		t.Fatalf("config.toml: namespace = %q, want k8s.io (where CRI looks)", ns)
	}

	step(t, "boot imports each good seed once, pinned, labelled and unpacked", func(t *testing.T) {
		// The records land before the service logs "seed imported": wait
		// for both events, then count the lines.
		took := waitFor(t, importWait, "good seeds imported", func() error {
			if err := checkImages(c, ns, good, labels); err != nil {
				return err
			}
			for _, s := range []string{seedOCI, seedDocker} {
				if imported(lastRun(d.Log()), s) == 0 {
					return fmt.Errorf("no \"seed imported\" line for %s yet", s)
				}
			}
			return nil
		})
		t.Logf("good images in %s, pinned, labelled and unpacked %v after ready", ns, took.Round(time.Millisecond))
		log := lastRun(d.Log())
		for _, s := range []string{seedOCI, seedDocker} {
			if n := imported(log, s); n != 1 {
				t.Errorf("%d \"seed imported\" lines for %s, want 1", n, s)
			}
			if el := errorLines(log, s); len(el) > 0 {
				t.Errorf("error lines for good seed %s:\n%s", s, strings.Join(el, "\n"))
			}
		}
	})

	step(t, "boot refuses the corrupt seed: a digest mismatch error, no image, no lease", func(t *testing.T) {
		waitFor(t, importWait, "bad seed reported", func() error {
			if len(errorLines(lastRun(d.Log()), seedBad)) == 0 {
				return fmt.Errorf("no level=error line for %s", seedBad)
			}
			return nil
		})
		log := lastRun(d.Log())
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
	})

	step(t, "CRI lists the good images, pinned, and not the corrupt one", func(t *testing.T) {
		took := waitFor(t, 10*time.Second, "CRI lists the imported images", func() error {
			return criHas(d.Address, good)
		})
		t.Logf("CRI ListImages lists both, pinned, %v later", took.Round(time.Millisecond))
		if imgs, err := criImages(d.Address); err != nil {
			t.Error(err)
		} else if _, ok := imgs[badImg.Name]; ok {
			t.Errorf("CRI lists %s from the corrupt seed", badImg.Name)
		}
		pd.assertServing(t)
	})

	step(t, "seeds dropped in, or written in place slowly, are imported once and complete", func(t *testing.T) {
		ev := pd.watch(t)
		dropIn(t, seeds, seedDrop, ociSeed(t, dropImg, testseed.Zstd))
		writeSlowly(t, filepath.Join(seeds, seedSlow), ociSeed(t, slowImg, testseed.Uncompressed), 2*time.Second)
		closed := time.Now()
		both := []string{dropImg.Name, slowImg.Name}
		waitFor(t, importWait, "dropped-in seeds imported", func() error {
			return checkImages(c, ns, both, labels)
		})
		ev.waitCount(t, 1, seeddir.Imported, seedDrop, seedSlow)
		t.Logf("slow seed imported %v after it was closed", time.Since(closed).Round(time.Millisecond))
		// A second import (there must be none) would have come by the
		// time the watch has judged a canary dropped after them.
		ev.settle(t)
		log := lastRun(d.Log())
		for _, s := range []string{seedDrop, seedSlow} {
			if n := len(ev.of(t, seeddir.Imported, s)); n != 1 {
				t.Errorf("%d imported events for %s, want exactly 1", n, s)
			}
			if f := ev.of(t, seeddir.Failed, s); len(f) > 0 {
				t.Errorf("failed events for %s: %+v", s, f)
			}
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
	})

	step(t, "a restart keeps records and pins, and imports only the changed seed", func(t *testing.T) {
		start := time.Now()
		d.Restart(t)
		t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
		// The boot pass runs while containerd starts, before anyone can
		// subscribe: the log and the records say what it did.
		ev := pd.watch(t)
		// Records and pins are containerd's own metadata: there at once.
		if err := checkImages(c, ns, all, labels); err != nil {
			t.Errorf("after restart: %v", err)
		}
		waitFor(t, 10*time.Second, "CRI lists the images after restart", func() error {
			return criHas(d.Address, all)
		})

		// A new version of the last seed (in name order): once it is
		// imported, the boot pass has been over every other seed.
		dropIn(t, seeds, seedSlow, ociSeed(t, slow2, testseed.Gzip))
		ev.waitCount(t, 1, seeddir.Imported, seedSlow)
		if err := checkImage(c, ns, slow2.Name, labels); err != nil {
			t.Fatalf("replaced seed: %v", err)
		}
		// The boot pass (before the subscription: the log says what it
		// did) is over once the watch judges a canary.
		ev.settle(t)
		log := lastRun(d.Log())
		for _, s := range []string{seedOCI, seedDocker, seedDrop} {
			if n := len(ev.of(t, seeddir.Imported, s)); n != 0 {
				t.Errorf("unchanged seed %s: %d imported events after restart", s, n)
			}
		}
		if n := len(ev.of(t, seeddir.Imported, seedSlow)); n != 1 {
			t.Errorf("replaced seed %s: %d imported events since restart, want 1", seedSlow, n)
		}
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
		assertState(t, pd.pluginRoot, map[string][]string{
			seedOCI:    {ociImg.Name},
			seedDocker: {dockerImg.Name},
			seedDrop:   {dropImg.Name},
			seedSlow:   {slow2.Name},
		})
		if s := readState(t, pd.pluginRoot); s.Seeds[seedBad].Error == "" {
			t.Errorf("state.json: corrupt seed %s not recorded as failed", seedBad)
		}
	})

	step(t, "a touched seed (same bytes, new mtime) is imported again", func(t *testing.T) {
		ev := pd.watch(t)
		now := time.Now()
		if err := os.Chtimes(filepath.Join(seeds, seedOCI), now, now); err != nil {
			t.Fatal(err)
		}
		ev.waitCount(t, 1, seeddir.Imported, seedOCI)
		if n := imported(lastRun(d.Log()), seedOCI); n != 1 {
			t.Errorf("touched seed %s: %d \"seed imported\" lines since restart, want 1", seedOCI, n)
		}
	})

	step(t, "a seed removed, then added back unchanged, is imported again", func(t *testing.T) {
		ev := pd.watch(t)
		aside := filepath.Join(t.TempDir(), seedDrop)
		if err := os.Rename(filepath.Join(seeds, seedDrop), aside); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "removed seed forgotten", func() error {
			if _, ok := readState(t, pd.pluginRoot).Seeds[seedDrop]; ok {
				return fmt.Errorf("state.json still lists %s", seedDrop)
			}
			return nil
		})
		if err := os.Rename(aside, filepath.Join(seeds, seedDrop)); err != nil {
			t.Fatal(err)
		}
		ev.waitCount(t, 1, seeddir.Imported, seedDrop)
		if n := imported(lastRun(d.Log()), seedDrop); n != 1 {
			t.Errorf("re-added seed %s: %d \"seed imported\" lines since restart, want 1", seedDrop, n)
		}
	})

	step(t, "in the end every image is there, CRI lists them, nothing is left half-done", func(t *testing.T) {
		if err := checkImages(c, ns, append(all, slow2.Name), labels); err != nil {
			t.Error(err)
		}
		if err := criHas(d.Address, append(all, slow2.Name)); err != nil {
			t.Error(err)
		}
		assertNoLeases(t, c, ns)
		pd.assertServing(t)
	})
}
