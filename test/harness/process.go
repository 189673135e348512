package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
	ctrTimeout   = 5 * time.Minute // a hung ctr must fail the test, not the whole go test run
)

// process is one run of the daemon; Restart makes a new one.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returns, so exit is observable
	err  error         // cmd.Wait's result, valid after done
}

// start launches the daemon and waits until its API answers.
func (d *Daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		return errors.New("daemon already running")
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy of the fd
	fmt.Fprintf(logf, "=== harness: %s starting %s --config %s\n", time.Now().Format(time.RFC3339Nano), d.binary, d.ConfigPath)

	cmd := exec.Command(d.binary, "--config", d.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary is killed (timeout, ^C) the daemon must
	// not outlive it holding mounts and sockets. It really fires when the
	// forking *thread* exits, so fork from a goroutine that keeps its thread
	// locked until the daemon is reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			p.err = cmd.Wait()
			close(p.done)
		}
	}()
	if err := <-started; err != nil {
		return err
	}
	d.proc = p

	if err := d.waitReady(p); err != nil {
		return fmt.Errorf("%w\n--- log tail (%s):\n%s", err, d.LogPath, testutil.Tail(d.Log(), 40))
	}
	return nil
}

// waitReady polls until Version answers. Each attempt uses a fresh client:
// a client created before the socket exists backs off for up to 10 s.
func (d *Daemon) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error = errors.New("socket never appeared")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("containerd exited during startup: %v", p.err)
		default:
		}
		if _, err := os.Stat(d.Address); err == nil {
			lastErr = ping(d.Address)
			if lastErr == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd not ready after %v: %v", readyTimeout, lastErr)
}

func ping(address string) error {
	c, err := client.New(address)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Version(ctx)
	return err
}

// StopMain is Stop without a testing.TB.
func (d *Daemon) StopMain() error {
	return d.signalAndWait(syscall.SIGTERM, stopTimeout)
}

// KillMain is Kill without a testing.TB.
func (d *Daemon) KillMain() error {
	return d.signalAndWait(syscall.SIGKILL, stopTimeout)
}

// signalAndWait sends sig and escalates to SIGKILL after grace.
func (d *Daemon) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.proc
	if p == nil {
		return nil
	}
	d.proc = nil
	// An error here means the process already exited; done still closes.
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return fmt.Errorf("containerd ignored %v for %v and was killed", sig, grace)
	case <-time.After(10 * time.Second):
		return errors.New("containerd survived SIGKILL (stuck in the kernel?)")
	}
}

// Client returns a client for the daemon whose calls default to the
// "default" namespace (as ctr's do); it is closed at test cleanup.
func (d *Daemon) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := d.ClientMain()
	if err != nil {
		t.Fatalf("harness: containerd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ClientMain is Client for TestMain; the caller closes it.
func (d *Daemon) ClientMain() (*client.Client, error) {
	return client.New(d.Address, client.WithDefaultNamespace("default"))
}

// Ctr runs the built ctr against this daemon and returns combined output.
// A failing ctr is returned as an error, not fatal: tests often expect one.
func (d *Daemon) Ctr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := d.CtrMain(args...)
	if err != nil {
		t.Logf("harness: ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, err
}

// CtrMain is Ctr without a testing.TB.
func (d *Daemon) CtrMain(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Bins.Ctr, append([]string{"--address", d.Address}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
