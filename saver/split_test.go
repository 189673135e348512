package saver

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/procstat"
)

// RemoveStale removes the partial files of a writer that is gone (of any
// OUT in the directory) and nothing else: not a live writer's, not
// another host's, not an older ctr-seed's (no writer named), not a
// directory, not other files.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	parts := strings.Split(procstat.Owner(), ":")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := ownerToken(strings.Join([]string{parts[0], parts[1], strconv.Itoa(cmd.Process.Pid), parts[3]}, ":"))
	elsewhere := ownerToken(strings.Join([]string{"other-host", parts[1], strconv.Itoa(cmd.Process.Pid), parts[3]}, ":"))
	stale := []string{
		".a.tar.partial-" + dead + "-123",
		".b b.tar.partial-" + dead + "-456",
	}
	kept := []string{
		partialPrefix("a.tar") + "789",
		".a.tar.partial-" + elsewhere + "-1",
		".a.tar.partial-12345",
		".a.tar.partial-" + dead + "-x1",
		"a.tar",
		"notes.txt",
	}
	for _, n := range append(slices.Clone(stale), kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".c.tar.partial-"+dead+"-9"), 0o755); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, ".c.tar.partial-"+dead+"-9")
	removed := NewOutput(filepath.Join(dir, "new.tar"), 0).RemoveStale()
	slices.Sort(removed)
	if !slices.Equal(removed, stale) {
		t.Errorf("removed %q; want %q", removed, stale)
	}
	for _, n := range kept {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v; want it kept", n, err)
		}
	}
}
