package harness

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Screen runs argv on a real terminal (a detached tmux pane of width ×
// height) and returns the final screen, wrapped lines joined, once the
// command has exited, and its exit code: what an operator at a console
// is left with. It fails the test if tmux is missing or the command does
// not end within timeout.
func Screen(t testing.TB, argv []string, width, height int, timeout time.Duration) (screen string, code int) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("harness: tmux is needed for terminal tests (.ci/run installs it): %v", err)
	}
	sock := fmt.Sprintf("ctr-seed-test-%d", time.Now().UnixNano())
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	script := strings.Join(quoted, " ") + "; code=$?; echo; echo CTR_SEED_EXIT=$code; sleep 600"
	if out, err := tmux("new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), "sh", "-c", script); err != nil {
		t.Fatalf("harness: tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { tmux("kill-server") })
	exitRE := regexp.MustCompile(`CTR_SEED_EXIT=([0-9]+)`)
	deadline := time.Now().Add(timeout)
	for {
		out, err := tmux("capture-pane", "-p", "-J", "-S", "-1000")
		if err != nil {
			t.Fatalf("harness: tmux capture-pane: %v: %s", err, out)
		}
		if m := exitRE.FindStringSubmatch(out); m != nil {
			code, _ := strconv.Atoi(m[1])
			screen := out[:strings.Index(out, "CTR_SEED_EXIT=")]
			return strings.TrimRight(screen, "\n "), code
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: %v still running on the terminal after %v; screen:\n%s", argv, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
