package procstat

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestStartTime(t *testing.T) {
	st := StartTime(os.Getpid())
	if st == "" || st == "0" {
		t.Fatalf("own start time: %q", st)
	}
	if st2 := StartTime(os.Getpid()); st2 != st {
		t.Errorf("start time changed: %q then %q", st, st2)
	}
	if got := StartTime(1 << 30); got != "" {
		t.Errorf("no such pid: %q", got)
	}
}

// This process is alive; a process that has exited is not; an owner on
// another host, in another PID namespace or unreadable is taken for alive.
func TestOwnerAlive(t *testing.T) {
	self := Owner()
	if !OwnerAlive(self) {
		t.Fatalf("own owner %q judged dead", self)
	}
	parts := strings.Split(self, ":")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strings.Join([]string{parts[0], parts[1], strconv.Itoa(cmd.Process.Pid), parts[3]}, ":")
	if OwnerAlive(dead) {
		t.Errorf("exited process %q judged alive", dead)
	}
	for _, o := range []string{
		"elsewhere:" + strings.Join(parts[1:], ":"),
		parts[0] + ":1:" + strings.Join(parts[2:], ":"),
		"garbage",
	} {
		if !OwnerAlive(o) {
			t.Errorf("%q judged dead; want alive (cannot tell)", o)
		}
	}
}
