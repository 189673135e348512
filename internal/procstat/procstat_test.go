package procstat

import (
	"os"
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
