package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testutil"
)

// DaemonOptions configures StartDaemon. The zero value starts the pinned
// containerd with CRI enabled.
type DaemonOptions struct {
	// Binary is the daemon to run; empty means Binaries().Containerd. Any
	// binary that takes containerd's --config flag works.
	Binary string
	// ExtraConfig is TOML merged into the generated config (e.g. plugin
	// sections). It is imported, so a [plugins."X"] table here replaces the
	// harness's own table for X wholesale. Ignored when ConfigFile is set.
	ExtraConfig string
	// ConfigFile, if set, is a complete config used instead of the generated
	// one. It is a text/template over the Daemon, so it can (and should) say
	// root = "{{.Root}}", state = "{{.State}}" and address = "{{.Address}}";
	// no --root/--state/--address flags are passed. Point
	// plugins."io.containerd.internal.v1.opt".path into {{.Dir}} as well, or
	// the daemon writes to the host's /opt/containerd.
	ConfigFile string
	// DisableCRI disables the CRI plugins: faster start, fewer log lines.
	DisableCRI bool
}

// Daemon is a private containerd process and everything it writes.
type Daemon struct {
	// Dir holds everything below; it comes from os.MkdirTemp("", "ctrseed-")
	// so the socket path stays well under the 108-byte sun_path limit.
	Dir                 string
	Root, State         string
	Address             string // unix socket of the gRPC API
	ConfigPath, LogPath string
	Bins                Bins

	binary string
	mu     sync.Mutex
	proc   *process // nil while stopped
}

// logTailLines is how much of its log a daemon of a failed test shows.
const logTailLines = 60

// StartDaemon starts a private containerd and registers its Cleanup with t;
// if t has failed by then, the tail of the daemon's log is logged first.
func StartDaemon(t testing.TB, opts DaemonOptions) *Daemon {
	t.Helper()
	d, err := StartDaemonMain(opts)
	if d != nil {
		// Register even on failure: a half-started daemon still owns a dir
		// and maybe mounts.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("harness: %s log tail:\n%s", filepath.Base(d.binary), testutil.Tail(d.Log(), logTailLines))
			}
			if err := d.Cleanup(); err != nil {
				t.Errorf("harness: cleanup: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("harness: start containerd: %v", err)
	}
	return d
}

// StartDaemonMain is StartDaemon for TestMain: the caller must call Cleanup.
// On error the returned Daemon, if non-nil, still needs Cleanup.
func StartDaemonMain(opts DaemonOptions) (*Daemon, error) {
	sweepStale()
	bins, err := BinariesMain()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ctrseed-")
	if err == nil && len(dir) > 80 {
		// A long $TMPDIR would push socket paths past sun_path's 108 bytes
		// (shim sockets add more); /tmp always fits.
		os.Remove(dir)
		dir, err = os.MkdirTemp("/tmp", "ctrseed-")
	}
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Dir:        dir,
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Address:    filepath.Join(dir, "containerd.sock"),
		ConfigPath: filepath.Join(dir, "config.toml"),
		LogPath:    filepath.Join(dir, "containerd.log"),
		Bins:       bins,
		binary:     opts.Binary,
	}
	if d.binary == "" {
		d.binary = bins.Containerd
	}
	// The owner pid lets a later run sweep this dir if our process dies
	// without running Cleanup (e.g. a test timeout panic).
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, ownerFile), pid, 0o644); err != nil {
		return d, err
	}
	if err := d.writeConfig(opts); err != nil {
		return d, fmt.Errorf("write config: %w", err)
	}
	return d, d.start()
}

// Stop sends SIGTERM, waits up to 20 s, then SIGKILLs. Stopping a stopped
// daemon is a no-op.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.StopMain(); err != nil {
		t.Fatalf("harness: stop containerd: %v", err)
	}
}

// Restart stops the daemon and starts it again on the same dirs and config,
// as a host reboot of containerd would.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if err := d.RestartMain(); err != nil {
		t.Fatalf("harness: restart containerd: %v", err)
	}
}

// Kill SIGKILLs the daemon (for fault tests) and waits until it is reaped.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	if err := d.KillMain(); err != nil {
		t.Fatalf("harness: kill containerd: %v", err)
	}
}

// RestartMain is Restart without a testing.TB.
func (d *Daemon) RestartMain() error {
	if err := d.StopMain(); err != nil {
		return err
	}
	return d.start()
}

// Log returns the daemon log so far (all runs, each headed by a marker line).
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", d.LogPath, err)
	}
	return string(b)
}
