package seeddir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// beingWritten reports whether anybody has the seed file (or any part of
// a split seed) open for writing.
func beingWritten(path string) bool {
	for _, p := range partsOf(path) {
		if fileBeingWritten(p) {
			return true
		}
	}
	return false
}

// fileBeingWritten: a read lease (F_SETLEASE) is refused exactly when
// somebody has the file open for writing. Where leases are not supported
// the caller's quiet period is the only guard.
func fileBeingWritten(path string) bool {
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

// splitQuietPeriod is the quiet period of a split seed that may have
// parts still to come: split writes every part but the last at full size,
// so a set whose last part is as large as its first (or a first part
// alone) may not be complete. It must stay unchanged this long, time for
// whoever copies the parts one by one to start on the next. A set whose
// last part is shorter is complete and has the file's quiet period. (A set
// that stays incomplete is then read, and refused in one line: its parts
// end inside the archive.)
var splitQuietPeriod = 30 * time.Second

// quietFor is the quiet period of the seed at path.
func quietFor(path string) time.Duration {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return dirQuietPeriod
	}
	if mayGrow(path) {
		return splitQuietPeriod
	}
	return quietPeriod
}

// partsOf is the files of the seed at path: its parts when it is split,
// else itself.
func partsOf(path string) []string {
	if parts, _ := fetcher.SplitParts(path); len(parts) > 0 {
		return parts
	}
	return []string{path}
}

// mayGrow: path is a split seed's first part (NAME.000, NAME.001) whose
// last part is as large as the first, or a zarf split package's header
// whose parts are not all there.
func mayGrow(path string) bool {
	if isZarf, complete := fetcher.ZarfSplit(path); isZarf {
		// zarf's header says how many parts, and bytes: complete or not.
		return !complete
	}
	if !firstPartRE.MatchString(path) {
		return false
	}
	parts := partsOf(path)
	first, err1 := os.Stat(parts[0])
	last, err2 := os.Stat(parts[len(parts)-1])
	return err1 == nil && err2 == nil && last.Size() >= first.Size()
}

var (
	firstPartRE = regexp.MustCompile(`\.00[01]$`)
	laterPartRE = regexp.MustCompile(`^(.+)\.([0-9]{3})$`)
	zarfPartRE  = regexp.MustCompile(`^(.+)\.part([0-9]{3})$`)
)

// firstPartOf names the first part in dir of the split seed whose later
// part (NAME.002 and on) is name.
func firstPartOf(dir, name string) (string, bool) {
	if m := zarfPartRE.FindStringSubmatch(name); m != nil && m[2] != "000" && !strings.HasPrefix(name, ".") {
		first := m[1] + ".part000"
		_, err := os.Lstat(filepath.Join(dir, first))
		return first, err == nil
	}
	m := laterPartRE.FindStringSubmatch(name)
	if m == nil || m[2] == "000" || m[2] == "001" || strings.HasPrefix(name, ".") {
		return "", false
	}
	for _, n := range []string{m[1] + ".001", m[1] + ".000"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return n, true
		}
	}
	return "", false
}
