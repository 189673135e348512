package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The peer tools the tests run that the Go module proxy has are pinned in
// test/tools (a module of its own, so their dependencies stay out of
// ctr-seed's) and built once per machine, like containerd.
const (
	toolsModuleDir = "test/tools"
	cosignPackage  = "github.com/sigstore/cosign/v2/cmd/cosign"
)

var cosignMemo memo[string]

// Cosign returns the cosign CLI built from the version test/tools pins.
// The first build on a machine takes minutes (`make test` does it before
// the tests run); it fails the test, never skips, if it cannot be built.
func Cosign(t testing.TB) string {
	t.Helper()
	return must(t, "cosign", CosignMain)
}

// CosignMain is Cosign without a testing.TB.
func CosignMain() (string, error) { return cosignMemo.get(cosign) }

func cosign() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	mod := filepath.Join(root, toolsModuleDir)
	sum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
	if err != nil {
		return "", err
	}
	// The cache is keyed by the pinned versions: a bump never reuses a
	// binary of another release, and the name says all a recipe would.
	h := sha256.Sum256(sum)
	dir, err := cachedBuild("tools-"+hex.EncodeToString(h[:6]), "", []string{"cosign"}, func(tmp string) error {
		_, err := goOutput(mod, "build", "-trimpath", "-o", filepath.Join(tmp, "cosign"), cosignPackage)
		return err
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "cosign"), nil
}

// CosignRun runs the real cosign in dir with an empty key password, and
// no docker config or TUF root of the developer's; it fails the test on a
// non-zero exit and returns the output.
func CosignRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Cosign(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=", "DOCKER_CONFIG="+t.TempDir(), "TUF_ROOT="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
