package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Cmd is a command for Run.
type Cmd struct {
	Argv    []string
	Dir     string        // "" is the current directory
	Env     []string      // added to os.Environ()
	Timeout time.Duration // 0: until ctx ends
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
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
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
	if ctx.Err() != nil {
		return r, fmt.Errorf("%s: still running after %v (hung?): %w\nstderr: %s", strings.Join(c.Argv, " "), r.Took.Round(time.Millisecond), ctx.Err(), r.Stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		return r, fmt.Errorf("running %s: %w", c.Argv[0], err)
	}
	return r, nil
}
