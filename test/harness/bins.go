// Package harness is the one shared harness for integration tests that need
// a real containerd daemon: it builds containerd and ctr from the version
// go.mod pins (cached per machine), starts private daemons in short temp
// dirs, and tears them down including any mounts they leave behind.
//
// Every helper comes in two forms: a testing.TB form that calls t.Fatal, and
// an error-returning "Main" form for TestMain, where no *testing.T exists.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// containerdModule is the module whose commands we build; its version comes
// from go.mod so the daemon under test always matches the client library.
const containerdModule = "github.com/containerd/containerd/v2"

// buildRecipe is stored beside cached binaries. Changing how they are built
// (flags, layout) must change this string so old caches are rebuilt rather
// than silently reused.
const buildRecipe = "recipe=1 CGO_ENABLED=0 -trimpath -X version.Version\n"

// Bins holds absolute paths of the containerd and ctr binaries and the
// module version (e.g. "v2.4.2") they were built from.
type Bins struct {
	Containerd, Ctr string
	Version         string
}

var (
	binsMu   sync.Mutex
	binsDone *Bins // memoised on success only, so a transient failure can be retried
)

// Binaries returns containerd and ctr built from the pinned module version,
// building them once per machine. It fails the test rather than skipping:
// a missing daemon is a broken environment, not an optional feature.
func Binaries(t testing.TB) Bins {
	t.Helper()
	b, err := BinariesMain()
	if err != nil {
		t.Fatalf("harness: containerd binaries: %v", err)
	}
	return b
}

// BinariesMain is Binaries for TestMain.
func BinariesMain() (Bins, error) {
	binsMu.Lock()
	defer binsMu.Unlock()
	if binsDone != nil {
		return *binsDone, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return Bins{}, err
	}
	ver, err := goOutput(root, "list", "-m", "-f", "{{.Version}}", containerdModule)
	if err != nil {
		return Bins{}, err
	}
	if ver == "" {
		return Bins{}, fmt.Errorf("go list gave no version for %s", containerdModule)
	}
	dir, err := cacheDir("containerd-" + ver)
	if err != nil {
		return Bins{}, err
	}
	b := Bins{
		Containerd: filepath.Join(dir, "containerd"),
		Ctr:        filepath.Join(dir, "ctr"),
		Version:    ver,
	}
	if err := buildLocked(root, dir, b); err != nil {
		return Bins{}, err
	}
	binsDone = &b
	return b, nil
}

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

// buildLocked builds the binaries unless a complete cache exists. Parallel
// test packages (go test ./... runs them as separate processes) serialise on
// a flock so only one of them pays for the ~1 min cold build.
func buildLocked(root, dir string, b Bins) error {
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close() // closing the fd drops the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", lock.Name(), err)
	}

	stamp := filepath.Join(dir, "recipe")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == buildRecipe &&
		isFile(b.Containerd) && isFile(b.Ctr) {
		return nil
	}
	// Build into a scratch dir on the same filesystem, then rename: a reader
	// that checks without the lock never sees a half-written binary.
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := goOutput(root, "build", "-trimpath", "-ldflags", b.VersionLDFlag(), "-o", tmp+string(os.PathSeparator),
		containerdModule+"/cmd/containerd", containerdModule+"/cmd/ctr"); err != nil {
		return err
	}
	for _, name := range []string{"ctr", "containerd"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	// The stamp goes last: its presence vouches for both binaries.
	return os.WriteFile(stamp, []byte(buildRecipe), 0o644)
}

// VersionLDFlag is the -ldflags entry that stamps containerd's version
// into a binary built from its module (containerd, containerd-seed), so
// that it reports the version it was built from.
func (b Bins) VersionLDFlag() string {
	return "-X " + containerdModule + "/version.Version=" + strings.TrimPrefix(b.Version, "v")
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// goOutput runs the go command in dir with cgo off (static binaries that do
// not depend on the host's libc or a C toolchain) and returns trimmed stdout.
func goOutput(dir string, args ...string) (string, error) { return goRun(dir, false, args...) }

// goRun is goOutput, with cgo on when cgo is set.
func goRun(dir string, cgo bool, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cgoEnv := "CGO_ENABLED=0"
	if cgo {
		cgoEnv = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), cgoEnv)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory (go test runs each test in its package dir).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return root
}

// ModuleRootMain is ModuleRoot for TestMain.
func ModuleRootMain() (string, error) { return moduleRoot() }

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
