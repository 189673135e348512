package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ownerFile in a daemon dir names the test process that made it.
const ownerFile = "harness.pid"

// Cleanup stops the daemon, unmounts everything below its dirs (snapshot and
// temp mounts would otherwise make RemoveAll fail with EBUSY) and removes
// Dir. It is idempotent; StartDaemon registers it with t.Cleanup.
func (d *Daemon) Cleanup() error {
	errs := []error{d.StopMain()}
	// Root/State differ from Dir only if a ConfigFile moved them; unmount
	// there too, but delete only the dir we created.
	for _, p := range []string{d.Dir, d.Root, d.State} {
		if p != "" {
			errs = append(errs, unmountUnder(p))
		}
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
// It repeats because mounts can be stacked on one point and each unmount
// only peels the top one.
func unmountUnder(dir string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // mountinfo shows resolved paths
	}
	for pass := 0; pass < 10; pass++ {
		mps, err := mountsUnder(dir)
		if err != nil || len(mps) == 0 {
			return err
		}
		sort.Slice(mps, func(i, j int) bool {
			return strings.Count(mps[i], "/") > strings.Count(mps[j], "/")
		})
		for _, mp := range mps {
			// A busy mount (a leftover shim's cwd, say) cannot be unmounted
			// normally; detaching still lets RemoveAll proceed.
			if unix.Unmount(mp, 0) != nil {
				_ = unix.Unmount(mp, unix.MNT_DETACH)
			}
		}
	}
	mps, err := mountsUnder(dir)
	if err == nil && len(mps) > 0 {
		err = fmt.Errorf("mounts remain under %s: %v", dir, mps)
	}
	return err
}

// mountsUnder lists mount points at or below dir from /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024) // overlay options can be long
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeOctal(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeOctal undoes mountinfo's \ooo escaping of space, tab, \n and \.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var sweepOnce sync.Once

// sweepStale removes daemon dirs whose owning test process died without
// running Cleanup (timeout panic, SIGKILL). Pdeathsig has already killed
// those daemons, but their dirs and mounts would pile up in /tmp.
func sweepStale() {
	sweepOnce.Do(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ctrseed-*"))
		more, _ := filepath.Glob("/tmp/ctrseed-*")
		for _, dir := range append(dirs, more...) {
			pid, err := os.ReadFile(filepath.Join(dir, ownerFile))
			if err != nil || !pidDead(string(pid)) {
				continue // not a daemon dir, or its owner is still running
			}
			if unmountUnder(dir) == nil {
				os.RemoveAll(dir)
			}
		}
	})
}
