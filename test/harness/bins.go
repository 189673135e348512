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

var binsMemo memo[Bins]

// Binaries returns containerd and ctr built from the pinned module version,
// building them once per machine. It fails the test rather than skipping:
// a missing daemon is a broken environment, not an optional feature.
func Binaries(t testing.TB) Bins {
	t.Helper()
	return must(t, "containerd binaries", BinariesMain)
}

// BinariesMain is Binaries for TestMain.
func BinariesMain() (Bins, error) { return binsMemo.get(binaries) }

func binaries() (Bins, error) {
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
	b := Bins{Version: ver}
	dir, err := cachedBuild("containerd-"+ver, buildRecipe, []string{"containerd", "ctr"}, func(tmp string) error {
		_, err := goOutput(root, "build", "-trimpath", "-ldflags", b.VersionLDFlag(), "-o", tmp+string(os.PathSeparator),
			containerdModule+"/cmd/containerd", containerdModule+"/cmd/ctr")
		return err
	})
	if err != nil {
		return Bins{}, err
	}
	b.Containerd, b.Ctr = filepath.Join(dir, "containerd"), filepath.Join(dir, "ctr")
	return b, nil
}

// CtrSeedMain builds ctr-seed (as make build does) and containerd and ctr
// at the pinned version: what every TestMain and benchmark needs first.
func CtrSeedMain() (ctrSeed string, bins Bins, err error) {
	if ctrSeed, err = BuildCommandMain("./cmd/ctr-seed"); err != nil {
		return "", Bins{}, fmt.Errorf("building ctr-seed: %w", err)
	}
	if bins, err = BinariesMain(); err != nil {
		return "", Bins{}, fmt.Errorf("containerd binaries: %w", err)
	}
	return ctrSeed, bins, nil
}

// VersionLDFlag is the -ldflags entry that stamps containerd's version
// into a binary built from its module (containerd, containerd-seed), so
// that it reports the version it was built from.
func (b Bins) VersionLDFlag() string {
	return "-X " + containerdModule + "/version.Version=" + strings.TrimPrefix(b.Version, "v")
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
	return must(t, "module root", moduleRoot)
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
