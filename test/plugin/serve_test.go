package plugin_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveProc is one run of `ctr-seed serve`.
type serveProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startServe runs `ctr-seed --address A serve --config F --state-dir D`
// with stdout and stderr captured. Like the harness's daemons it dies with
// the test process (Pdeathsig, from a thread kept locked until it exits).
func startServe(t *testing.T, address, config, stateDir string) *serveProc {
	t.Helper()
	p := &serveProc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(ctrSeed, "--address", address, "serve", "--config", config, "--state-dir", stateDir)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := p.cmd.Start()
		started <- err
		if err == nil {
			p.err = p.cmd.Wait()
			close(p.done)
		}
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting ctr-seed serve: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *serveProc) running() error {
	select {
	case <-p.done:
		return fmt.Errorf("ctr-seed serve exited: %v\n%s", p.err, p.out.String())
	default:
		return nil
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *serveProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ctr-seed serve still running 20 s after SIGTERM:\n%s", p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("ctr-seed serve: %v", p.err)
	}
	return 0
}

// TestServe is TestPlugin's scenario for `ctr-seed serve` beside a stock
// containerd: boot import of good and bad seeds, a drop-in, and a restart
// of serve (SIGTERM, start again) that does not re-import unchanged seeds.
func TestServe(t *testing.T) {
	t.Parallel()
	d := harness.StartDaemon(t, harness.DaemonOptions{DisableCRI: true})
	c := d.Client(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log tail:\n%s", tail(d.Log(), 40))
		}
	})

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

	p := startServe(t, d.Address, cfg, stateDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ctr-seed serve output (latest run):\n%s", tail(p.out.String(), 40))
		}
	})
	took := waitFor(t, importWait, "good seeds imported", func() error {
		if err := p.running(); err != nil {
			return err
		}
		return checkImages(c, ns, good, labels)
	})
	t.Logf("serve: good images pinned, labelled and unpacked in %v", took.Round(time.Millisecond))
	waitFor(t, importWait, "bad seed reported", func() error {
		for _, l := range errorLines(p.out.String(), seedBad) {
			if strings.Contains(l, "digest mismatch") {
				return nil
			}
		}
		return fmt.Errorf("no level=error line naming %s with \"digest mismatch\"", seedBad)
	})
	if names := imageNames(t, c, ns); slices.Contains(names, badImg.Name) {
		t.Errorf("image %s from the corrupt seed exists", badImg.Name)
	}
	assertNoLeases(t, c, ns)

	dropImg := uniqueImage(t, "docker.io/ctrseed-test/serve-dropped:1", false, testseed.Gzip)
	dropIn(t, seeds, seedDrop, ociSeed(t, dropImg, testseed.Uncompressed))
	waitFor(t, importWait, "dropped-in seed imported", func() error {
		if err := p.running(); err != nil {
			return err
		}
		if imported(p.out.String(), seedDrop) == 0 {
			return fmt.Errorf("no \"seed imported\" line for %s", seedDrop)
		}
		return checkImage(c, ns, dropImg.Name, labels)
	})
	time.Sleep(1500 * time.Millisecond) // room for a second import, which must not come
	out1 := p.out.String()
	for _, s := range []string{seedOCI, seedDocker, seedDrop} {
		if n := imported(out1, s); n != 1 {
			t.Errorf("%d \"seed imported\" lines for %s, want 1", n, s)
		}
		if el := errorLines(out1, s); len(el) > 0 {
			t.Errorf("error lines for %s:\n%s", s, strings.Join(el, "\n"))
		}
	}

	if code := p.stop(t); code != 0 {
		t.Errorf("ctr-seed serve exited %d on SIGTERM, want 0:\n%s", code, tail(p.out.String(), 20))
	}
	assertState(t, stateDir, map[string][]string{seedOCI: {ociImg.Name}, seedDocker: {dockerImg.Name}, seedDrop: {dropImg.Name}})

	// A seed that arrives while serve is down, last in name order: when it
	// is imported, the boot pass has been over every other seed.
	laterImg := uniqueImage(t, "docker.io/ctrseed-test/serve-later:1", false, testseed.Zstd)
	if err := os.WriteFile(filepath.Join(seeds, seedLater), ociSeed(t, laterImg, testseed.Uncompressed), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startServe(t, d.Address, cfg, stateDir)
	waitFor(t, importWait, "seed added while serve was down imported", func() error {
		if err := p.running(); err != nil {
			return err
		}
		if imported(p.out.String(), seedLater) == 0 {
			return fmt.Errorf("no \"seed imported\" line for %s", seedLater)
		}
		return checkImage(c, ns, laterImg.Name, labels)
	})
	out2 := p.out.String()
	for _, s := range []string{seedOCI, seedDocker, seedDrop} {
		if n := imported(out2, s); n != 0 {
			t.Errorf("unchanged seed %s imported again after serve restarted:\n%s", s, strings.Join(seedLines(out2, "", "seed imported", s), "\n"))
		}
	}
	if err := checkImages(c, ns, []string{ociImg.Name, dockerImg.Name, dropImg.Name}, labels); err != nil {
		t.Error(err)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("ctr-seed serve exited %d on SIGTERM, want 0:\n%s", code, tail(p.out.String(), 20))
	}
	assertState(t, stateDir, map[string][]string{
		seedOCI: {ociImg.Name}, seedDocker: {dockerImg.Name}, seedDrop: {dropImg.Name}, seedLater: {laterImg.Name},
	})
	if _, err := c.Version(nsCtx(ns)); err != nil {
		t.Errorf("containerd stopped serving: %v", err)
	}
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
