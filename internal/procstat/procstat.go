// Package procstat reads what identifies a process across pid reuse.
package procstat

import (
	"fmt"
	"os"
	"strconv"
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

// Owner identifies this process across pid reuse, PID namespaces and
// hosts: "host:pidns:pid:start". Whatever a process leaves behind to be
// cleaned up if it is killed (an import's lease, a save's partial files)
// records it, so that a later run can tell whether its writer is gone.
func Owner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%s:%d:%s", host, PIDNamespace(), os.Getpid(), StartTime(os.Getpid()))
}

// OwnerAlive is false only for an owner that ran on this host, in this
// PID namespace, and is gone. An owner elsewhere (another host, another
// PID namespace: a pod without hostPID), unreadable, or in an older
// three-part form that names no namespace, is taken for alive: a live
// writer is never judged dead.
func OwnerAlive(owner string) bool {
	parts := strings.Split(owner, ":")
	if len(parts) != 4 {
		return true
	}
	host, _ := os.Hostname()
	ns := PIDNamespace()
	pid, err := strconv.Atoi(parts[2])
	if parts[0] != host || ns == "" || parts[1] != ns || err != nil {
		return true
	}
	st := StartTime(pid)
	return st != "" && st == parts[3]
}
