package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cmd is a command for Run or Start.
type Cmd struct {
	Argv    []string
	Dir     string        // "" is the current directory
	Env     []string      // added to os.Environ()
	Timeout time.Duration // Run only; 0: until ctx ends. A started one is bounded by Proc.Wait.
	// Combined sends stderr into Stdout, interleaved as written, for a
	// process whose log and output are read as one (ctr-seed serve).
	Combined bool
	// Stdin is the command's standard input; nil: none.
	Stdin io.Reader
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int            // exit code; -1 if a signal ended it
	Signal         syscall.Signal // the signal that ended it, if any
	Took           time.Duration
}

func (r Result) String() string {
	how := fmt.Sprintf("exit %d", r.Code)
	if r.Signal != 0 {
		how = "killed by " + r.Signal.String()
	}
	return fmt.Sprintf("%s after %v\nstdout:\n%s\nstderr:\n%s", how, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Run runs c to its end. A command that exits non-zero is a Result, not
// an error; one that cannot start, or that outlives its timeout (a hang),
// is an error, with what it printed on stderr.
func Run(ctx context.Context, c Cmd) (Result, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var out, errb bytes.Buffer
	c.setup(cmd, &out, &errb)
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
	if ctx.Err() != nil {
		return r, fmt.Errorf("%s: still running after %v (hung?): %w\nstderr: %s", strings.Join(c.Argv, " "), r.Took.Round(time.Millisecond), ctx.Err(), r.Stderr)
	}
	if err := r.setExit(err); err != nil {
		return r, fmt.Errorf("running %s: %w", c.Argv[0], err)
	}
	return r, nil
}

func (c Cmd) setup(cmd *exec.Cmd, stdout, stderr io.Writer) {
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Stdin = c.Stdin
	if c.Combined {
		cmd.Stderr = stdout
	}
}

// setExit fills Code and Signal from cmd.Wait's error; an error that is
// not an exit status (the wait itself failed) is returned.
func (r *Result) setExit(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	r.Code = ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal()
	}
	return nil
}

// Proc is a command started by Start, running in the background.
type Proc struct {
	Argv           []string
	Started        time.Time
	cmd            *exec.Cmd
	stdout, stderr SyncBuffer
	done           chan struct{} // closed once the process is reaped
	res            Result        // valid after done
}

// Start starts c in the background and returns at once. Like the
// daemons, the process dies with the test binary (Pdeathsig, forked from
// a thread kept locked until it is reaped), and it is killed at cleanup if
// the test left it running. A process that cannot start fails the test.
func Start(t testing.TB, c Cmd) *Proc {
	t.Helper()
	p := &Proc{Argv: c.Argv, done: make(chan struct{})}
	p.cmd = exec.Command(c.Argv[0], c.Argv[1:]...)
	c.setup(p.cmd, &p.stdout, &p.stderr)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p.Started = time.Now()
		err := p.cmd.Start()
		started <- err
		if err != nil {
			return
		}
		err = p.cmd.Wait()
		p.res = Result{Stdout: p.stdout.String(), Stderr: p.stderr.String(), Took: time.Since(p.Started)}
		if err := p.res.setExit(err); err != nil {
			p.res.Code, p.res.Stderr = -1, p.res.Stderr+"\n(wait: "+err.Error()+")"
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("harness: starting %s: %v", strings.Join(c.Argv, " "), err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stdout is what the process has printed on stdout so far (with
// Cmd.Combined, on stderr as well).
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is what the process has printed on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running is nil while the process runs; once it has exited, an error
// saying how, with its output: for polls that must stop if it died.
func (p *Proc) Running() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("%s exited: %s", p.Argv[0], p.res)
}

// Result is how the process ended; valid once Exited.
func (p *Proc) Result() Result {
	<-p.done
	return p.res
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Freeze stops the process and its descendants (SIGSTOP), so that a test
// can act while it is at a given point, however fast it would have gone
// on; Thaw lets them go on. Signals sent meanwhile are delivered then.
func (p *Proc) Freeze() error { return signalTree(p.Pid(), syscall.SIGSTOP) }

// Thaw resumes what Freeze stopped.
func (p *Proc) Thaw() error { return signalTree(p.Pid(), syscall.SIGCONT) }

// signalTree sends sig to pid and every descendant (as /proc lists them).
func signalTree(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				if err := signalTree(child, sig); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Wait waits for the process to exit. One still running after timeout is
// sent SIGQUIT (a Go program then prints its goroutines on stderr), then
// killed, and the test fails with what it printed.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) Result {
	t.Helper()
	select {
	case <-p.done:
		return p.res
	case <-time.After(timeout):
	}
	p.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	t.Fatalf("%s still running after %v; killed\n%s", strings.Join(p.Argv, " "), timeout, p.res)
	return Result{}
}

// Stop sends SIGTERM and waits, as Wait does, for the process to exit.
func (p *Proc) Stop(t testing.TB, timeout time.Duration) Result {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		t.Fatalf("SIGTERM to %s: %v", p.Argv[0], err)
	}
	return p.Wait(t, timeout)
}

// SyncBuffer collects output (a child's, a logger's) while the test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
