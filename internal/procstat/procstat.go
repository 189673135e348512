// Package procstat reads what identifies a process across pid reuse.
package procstat

import (
	"fmt"
	"os"
	"strings"
)

// StartTime is field 22 of /proc/<pid>/stat, the process's start time in
// clock ticks since boot; "" if there is no such process.
func StartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name (field 2) may hold spaces; fields resume after ")".
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// PIDNamespace identifies the PID namespace of this process ("" if it
// cannot be read): pids and start times mean something only inside it.
func PIDNamespace() string {
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	// "pid:[4026531836]"
	return strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
}
