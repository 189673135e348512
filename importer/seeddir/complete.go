package seeddir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ctr-seed/ctr-seed/fetcher"
	"golang.org/x/sys/unix"
)

// isCandidate is fetcher.SeedName: the one rule for which names in a
// directory can be seeds.
var isCandidate = fetcher.SeedName

// fingerprintOf describes the current version of a seed. For a layout
// directory it sums its files, so any change inside is seen.
func fingerprintOf(path string) (fingerprint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fingerprint{}, err
	}
	fp := fingerprint{Size: fi.Size(), MTime: fi.ModTime().UTC()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		fp.Inode = st.Ino
	}
	if !fi.IsDir() {
		// A split seed's first part stands for all its parts: a part
		// added or grown is a new version.
		if parts, _ := fetcher.SplitParts(path); len(parts) > 1 {
			fp.Size = 0
			for _, p := range parts {
				pi, err := os.Stat(p)
				if err != nil {
					return fingerprint{}, err
				}
				fp.Size += pi.Size()
				if m := pi.ModTime().UTC(); m.After(fp.MTime) {
					fp.MTime = m
				}
			}
		}
		return fp, nil
	}
	fp.Size = 0
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fp.Size += info.Size()
		if m := info.ModTime().UTC(); m.After(fp.MTime) {
			fp.MTime = m
		}
		return nil
	})
	return fp, err
}

// beingWritten reports whether anybody has the file open for writing: a
// read lease (F_SETLEASE) is refused exactly then. Where leases are not
// supported the caller's quiet period is the only guard.
func beingWritten(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		// Only regular files are opened: a device node (or a link to one)
		// is never opened, opening can have side effects (a watchdog, a
		// tape); the import refuses it without opening it either.
		return false
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EBUSY)
	}
	unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	return false
}

// isBusy: open for writing, or changed within its quiet period.
func isBusy(path string) bool {
	fp, err := fingerprintOf(path)
	if err != nil {
		return false // gone; the caller finds out
	}
	return time.Since(fp.MTime) < quietFor(path) || beingWritten(path)
}

// quietPeriod is how long a seed file must stay unchanged before it is
// read; a file open for writing is never read, whatever its age.
const quietPeriod = 500 * time.Millisecond

// dirQuietPeriod is the same for an OCI layout directory. A directory's
// files cannot be asked whether anyone still writes them as one, and a
// copy (from a slow stick, with cp -a keeping old mtimes) may pause between
// index.json and the blobs: the tree must keep its fingerprint this long.
// Copying it in under a hidden name and renaming it is immediate.
const dirQuietPeriod = 5 * time.Second

// quietFor is the quiet period of the seed at path.
func quietFor(path string) time.Duration {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return dirQuietPeriod
	}
	return quietPeriod
}
