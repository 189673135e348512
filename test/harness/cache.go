package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// The binaries the tests run that come from outside this module
// (containerd and ctr at the version go.mod pins, the peer tools
// test/tools pins) are built once per machine into a cache dir and once per
// process looked up: cachedBuild and memo are that, for all of them.

// cacheDir is $CTR_SEED_CACHE/<name> (containerd-<version>, tools-<pins>),
// defaulting the base to the user cache dir. The version is part of the
// name so bumping go.mod never reuses binaries of another release.
func cacheDir(name string) (string, error) {
	base := os.Getenv("CTR_SEED_CACHE")
	if base == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			uc = os.TempDir() // no HOME (e.g. a bare CI env): still cache per boot
		}
		base = filepath.Join(uc, "ctr-seed")
	}
	dir, err := filepath.Abs(filepath.Join(base, name))
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// cachedBuild returns the cache dir name holding the binaries names,
// building them first (build writes them into the scratch dir it is given)
// unless all of them are there and, when recipe is set, stamped with it: a
// change to how they are built must change recipe so that old caches are
// rebuilt rather than silently reused. Parallel test packages (go test
// ./... runs them as separate processes) serialise on a flock so only one
// of them pays for a cold build. The binaries are built on the same
// filesystem and renamed into place, the stamp last: a reader that checks
// without the lock never sees a half-written binary.
func cachedBuild(name, recipe string, names []string, build func(tmp string) error) (string, error) {
	dir, err := cacheDir(name)
	if err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // closing the fd drops the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("flock %s: %w", lock.Name(), err)
	}
	if cached(dir, recipe, names) {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		return "", err
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil {
			return "", err
		}
	}
	if recipe == "" {
		return dir, nil
	}
	// The stamp goes last: its presence vouches for every binary.
	return dir, os.WriteFile(filepath.Join(dir, "recipe"), []byte(recipe), 0o644)
}

// cached reports whether dir holds all of names, stamped with recipe if
// one is set.
func cached(dir, recipe string, names []string) bool {
	if recipe != "" {
		if got, err := os.ReadFile(filepath.Join(dir, "recipe")); err != nil || string(got) != recipe {
			return false
		}
	}
	for _, n := range names {
		if !isFile(filepath.Join(dir, n)) {
			return false
		}
	}
	return true
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// memo is a value looked up once per process: memoised on success only,
// so a transient failure can be retried.
type memo[T any] struct {
	mu   sync.Mutex
	v    T
	done bool
}

func (m *memo[T]) get(f func() (T, error)) (T, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return m.v, nil
	}
	v, err := f()
	if err != nil {
		return v, err
	}
	m.v, m.done = v, true
	return v, nil
}

// must is the testing.TB form of a "Main" helper: it fails the test rather
// than skipping, since a missing binary is a broken environment, not an
// optional feature.
func must[T any](t testing.TB, what string, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatalf("harness: %s: %v", what, err)
	}
	return v
}
