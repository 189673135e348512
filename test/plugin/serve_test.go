package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// startServe runs `ctr-seed --address A serve --config F --state-dir D`,
// its stdout and stderr (the log) captured together.
func startServe(t *testing.T, address, config, stateDir string) *harness.Proc {
	t.Helper()
	p := harness.Start(t, harness.Cmd{Argv: []string{ctrSeed, "--address", address, "serve", "--config", config, "--state-dir", stateDir}, Combined: true})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ctr-seed serve output:\n%s", tail(p.Stdout(), 40))
		}
	})
	return p
}

// stopServe sends SIGTERM, on which serve must exit 0 within 20 s.
func stopServe(t *testing.T, p *harness.Proc) {
	t.Helper()
	if r := p.Stop(t, 20*time.Second); r.Code != 0 {
		t.Errorf("ctr-seed serve on SIGTERM: %s, want exit 0", r)
	}
}

// waitServeImported waits until serve (p) has published n imported
// events for seed, and logged it as imported; img must be there, pinned,
// labelled and unpacked, and serve still running.
func waitServeImported(t *testing.T, p *harness.Proc, ev *seedEvents, c *client.Client, ns, seed, img string, labels map[string]string) {
	t.Helper()
	ev.wait(t, importWait, seed+" imported", func(evs []seeddir.Event) error {
		if err := p.Running(); err != nil {
			return err
		}
		if len(eventsOf(evs, seeddir.Imported, seed)) == 0 {
			return fmt.Errorf("no imported event for %s:\n%s", seed, describe(evs))
		}
		return nil
	})
	// The line is logged before the event is published, but serve's
	// output reaches the test through a pipe read on its own.
	waitFor(t, importWait, "a \"seed imported\" line for "+seed, func() error {
		if imported(p.Stdout(), seed) == 0 {
			return fmt.Errorf("no \"seed imported\" line for %s", seed)
		}
		return nil
	})
	if err := checkImage(c, ns, img, labels); err != nil {
		t.Error(err)
	}
}

// TestServe is TestPlugin's scenario for `ctr-seed serve` beside a stock
// containerd, in steps that build on each other.
func TestServe(t *testing.T) {
	t.Parallel()
	d := harness.StartDaemon(t, harness.DaemonOptions{DisableCRI: true})
	c := d.Client(t)

	tmp := t.TempDir()
	seeds, stateDir := filepath.Join(tmp, "seeds"), filepath.Join(tmp, "state")
	if err := os.Mkdir(seeds, 0o755); err != nil {
		t.Fatal(err)
	}
	const ns = "k8s.io"
	cfg := filepath.Join(tmp, "ctr-seed.toml")
	// The plugin's keys at the top level; those left out keep the defaults.
	body := fmt.Sprintf(`seeds_dir = %s
namespace = %q
snapshotter = "overlayfs"
watch = true
[labels]
  "io.ctr-seed.source" = "serve"
`, strconv.Quote(seeds), ns)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"io.ctr-seed.source": "serve", labelPinned: "pinned", labelManaged: "managed"}

	ociImg := uniqueImage(t, "docker.io/ctrseed-test/serve-oci:1", false, testseed.Gzip)
	dockerImg := uniqueImage(t, "docker.io/ctrseed-test/serve-docker:1", true, testseed.Uncompressed)
	badImg := uniqueImage(t, "docker.io/ctrseed-test/serve-bad:1", false, testseed.Gzip)
	corrupt(badImg)
	dropImg := uniqueImage(t, "docker.io/ctrseed-test/serve-dropped:1", false, testseed.Gzip)
	laterImg := uniqueImage(t, "docker.io/ctrseed-test/serve-later:1", false, testseed.Zstd)
	const (
		seedOCI    = "a-oci.tar.gz"
		seedDocker = "b-docker.tar"
		seedBad    = "c-corrupt.tar"
		seedDrop   = "d-dropped.tar"
		seedLater  = "z-later.tar"
	)
	for name, data := range map[string][]byte{
		seedOCI:    ociSeed(t, ociImg, testseed.Gzip),
		seedDocker: dockerSeed(t, "ctrseed-test/serve-docker:1", dockerImg, testseed.Uncompressed),
		seedBad:    ociSeed(t, badImg, testseed.Uncompressed),
	} {
		if err := os.WriteFile(filepath.Join(seeds, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := []string{ociImg.Name, dockerImg.Name}

	// Subscribed before serve starts: its boot pass is seen too.
	ev := watchSeedEvents(t, c, ns, seeds)
	p := startServe(t, d.Address, cfg, stateDir)
	step(t, "boot imports the good seeds and refuses the corrupt one", func(t *testing.T) {
		took := waitFor(t, importWait, "good seeds imported", func() error {
			if err := p.Running(); err != nil {
				return err
			}
			return checkImages(c, ns, good, labels)
		})
		t.Logf("serve: good images pinned, labelled and unpacked in %v", took.Round(time.Millisecond))
		ev.waitCount(t, 1, seeddir.Failed, seedBad)
		if f := ev.of(t, seeddir.Failed, seedBad); !strings.Contains(f[0].Error, "digest mismatch") {
			t.Errorf("failed event for %s: %q, want a digest mismatch", seedBad, f[0].Error)
		}
		waitFor(t, importWait, "bad seed reported", func() error {
			for _, l := range errorLines(p.Stdout(), seedBad) {
				if strings.Contains(l, "digest mismatch") {
					return nil
				}
			}
			return fmt.Errorf("no level=error line naming %s with \"digest mismatch\"", seedBad)
		})
		// Its extraction snapshot may be collected before the unpacker's
		// own cleanup: that is no error line of containerd's either.
		if strings.Contains(p.Stdout(), "failed to cleanup") {
			t.Errorf("a failed import logged a cleanup error:\n%s", strings.Join(errorLines(p.Stdout(), seedBad), "\n"))
		}
		if names := imageNames(t, c, ns); slices.Contains(names, badImg.Name) {
			t.Errorf("image %s from the corrupt seed exists", badImg.Name)
		}
		assertNoLeases(t, c, ns)
	})

	step(t, "a seed dropped in while running is imported once", func(t *testing.T) {
		dropIn(t, seeds, seedDrop, ociSeed(t, dropImg, testseed.Uncompressed))
		waitServeImported(t, p, ev, c, ns, seedDrop, dropImg.Name, labels)
		ev.settle(t) // a second import, which must not come, would have by now
		out := p.Stdout()
		for _, s := range []string{seedOCI, seedDocker, seedDrop} {
			if n := len(ev.of(t, seeddir.Imported, s)); n != 1 {
				t.Errorf("%d imported events for %s, want 1", n, s)
			}
			if f := ev.of(t, seeddir.Failed, s); len(f) > 0 {
				t.Errorf("failed events for %s: %+v", s, f)
			}
			if n := imported(out, s); n != 1 {
				t.Errorf("%d \"seed imported\" lines for %s, want 1", n, s)
			}
			if el := errorLines(out, s); len(el) > 0 {
				t.Errorf("error lines for %s:\n%s", s, strings.Join(el, "\n"))
			}
		}
	})

	step(t, "SIGTERM stops serve with exit 0, the state recording every good seed", func(t *testing.T) {
		stopServe(t, p)
		assertState(t, stateDir, map[string][]string{seedOCI: {ociImg.Name}, seedDocker: {dockerImg.Name}, seedDrop: {dropImg.Name}})
	})

	step(t, "after a restart only the seed added meanwhile is imported", func(t *testing.T) {
		// Last in name order: when it is imported, the boot pass has been
		// over every other seed.
		if err := os.WriteFile(filepath.Join(seeds, seedLater), ociSeed(t, laterImg, testseed.Uncompressed), 0o644); err != nil {
			t.Fatal(err)
		}
		p = startServe(t, d.Address, cfg, stateDir)
		waitServeImported(t, p, ev, c, ns, seedLater, laterImg.Name, labels)
		ev.settle(t) // the boot pass is over
		out := p.Stdout()
		for _, s := range []string{seedOCI, seedDocker, seedDrop} {
			if n := len(ev.of(t, seeddir.Imported, s)); n != 1 {
				t.Errorf("unchanged seed %s: %d imported events in both runs, want 1 (the first run's)", s, n)
			}
			if n := imported(out, s); n != 0 {
				t.Errorf("unchanged seed %s imported again after serve restarted:\n%s", s, strings.Join(seedLines(out, "", "seed imported", s), "\n"))
			}
		}
		if err := checkImages(c, ns, []string{ociImg.Name, dockerImg.Name, dropImg.Name}, labels); err != nil {
			t.Error(err)
		}
		stopServe(t, p)
		assertState(t, stateDir, map[string][]string{
			seedOCI: {ociImg.Name}, seedDocker: {dockerImg.Name}, seedDrop: {dropImg.Name}, seedLater: {laterImg.Name},
		})
		if _, err := c.Version(nsCtx(ns)); err != nil {
			t.Errorf("containerd stopped serving: %v", err)
		}
	})
}

// TestVersion: containerd-seed --version names containerd's version and
// ctr-seed's.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(containerdSeed, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd-seed --version: %v\n%s", err, out)
	}
	s := strings.TrimSpace(string(out))
	t.Logf("containerd-seed --version: %s", s)
	want := strings.TrimPrefix(bins.Version, "v")
	if want != "2.4.2" {
		t.Logf("note: go.mod pins containerd %s (this test was written for 2.4.2)", bins.Version)
	}
	if !strings.Contains(s, want) {
		t.Errorf("--version %q does not mention containerd %s", s, want)
	}
	if !strings.Contains(s, "ctr-seed "+seedVersion) {
		t.Errorf("--version %q does not mention ctr-seed %s", s, seedVersion)
	}
}
