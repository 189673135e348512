package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Built commands live in one temp dir per test process. It is not a
// t.TempDir: that would vanish after the first test while the memoised path
// is still handed out to later ones.
const buildDirPrefix = "ctrseed-build-"

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
	buildDir string
)

// withCgo are the commands built with cgo, as make build builds them:
// ctr-seed inflates gzip layers with the system's zlib (see
// internal/gunzip). The rest are static.
var withCgo = map[string]bool{"./cmd/ctr-seed": true}

// BuildCommand builds a main package of this module (e.g. "./cmd/ctr-seed",
// relative to the module root), static (but for withCgo) and with
// -trimpath, and returns the binary's path. ldflags are passed to the linker (e.g. "-X main.version=v1");
// each package is built once per test process and set of ldflags; the go
// build cache makes that cheap.
func BuildCommand(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	return must(t, "build "+pkg, func() (string, error) { return BuildCommandMain(pkg, ldflags...) })
}

// BuildCommandMain is BuildCommand for TestMain.
func BuildCommandMain(pkg string, ldflags ...string) (string, error) {
	flags := strings.Join(ldflags, " ")
	key := pkg + "\x00" + flags
	buildsMu.Lock()
	r := builds[key]
	if r == nil {
		r = &buildResult{}
		builds[key] = r
	}
	buildsMu.Unlock()
	r.once.Do(func() { r.path, r.err = buildCommand(pkg, flags) })
	return r.path, r.err
}

func buildCommand(pkg, ldflags string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := processBuildDir()
	if err != nil {
		return "", err
	}
	// Distinct packages may share a base name (cmd/x, test/x), and one
	// package may be built with different ldflags: each build gets its own
	// subdirectory.
	sub, err := os.MkdirTemp(dir, "pkg-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(sub, filepath.Base(strings.TrimSuffix(pkg, "/")))
	if _, err := goRun(root, withCgo[pkg], "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg); err != nil {
		return "", err
	}
	return out, nil
}

// processBuildDir makes this process's build dir, first removing dirs left by
// earlier test processes that have exited (they cannot clean up after
// themselves because no hook runs when a test binary exits).
func processBuildDir() (string, error) {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if buildDir != "" {
		return buildDir, nil
	}
	olds, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, old := range olds {
		if pidDead(strings.TrimPrefix(filepath.Base(old), buildDirPrefix)) {
			os.RemoveAll(old)
		}
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", buildDirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	buildDir = dir
	return dir, nil
}

// pidDead reports whether s starts with the pid of a process that no longer
// exists. Unparsable names count as alive so that we never delete something
// we do not own.
func pidDead(s string) bool {
	s, _, _ = strings.Cut(s, "-")
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
