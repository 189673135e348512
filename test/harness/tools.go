package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

var (
	cosignMu   sync.Mutex
	cosignPath string
)

// Cosign returns the cosign CLI built from the version test/tools pins.
// The first build on a machine takes minutes (`make test` does it before
// the tests run); it fails the test, never skips, if it cannot be built.
func Cosign(t testing.TB) string {
	t.Helper()
	p, err := CosignMain()
	if err != nil {
		t.Fatalf("harness: cosign: %v", err)
	}
	return p
}

// CosignMain is Cosign without a testing.TB.
func CosignMain() (string, error) {
	cosignMu.Lock()
	defer cosignMu.Unlock()
	if cosignPath != "" {
		return cosignPath, nil
	}
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
	// binary of another release.
	h := sha256.Sum256(sum)
	dir, err := cacheDir("tools-" + hex.EncodeToString(h[:6]))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cosign")
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("flock %s: %w", lock.Name(), err)
	}
	if !isFile(bin) {
		tmp := bin + ".build"
		if _, err := goOutput(mod, "build", "-trimpath", "-o", tmp, cosignPackage); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, bin); err != nil {
			return "", err
		}
	}
	cosignPath = bin
	return bin, nil
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
