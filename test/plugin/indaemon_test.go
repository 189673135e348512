package plugin_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// runCLI runs ctr-seed and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	r, err := harness.Run(t.Context(), harness.Cmd{Argv: append([]string{ctrSeed}, args...), Dir: dir, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r.Stdout, r.Stderr, r.Code
}

// TestImportInDaemon: `ctr-seed import --in-daemon` has containerd-seed
// read the seed from disk and import it into the caller's namespace; a
// bad seed fails the same way as a local import; a stock containerd
// says it cannot.
func TestImportInDaemon(t *testing.T) {
	t.Parallel()
	pd := startPlugin(t, newSeedsDir(t), harness.DaemonOptions{})
	d, c := pd.d, pd.c
	const ns = "in-daemon"
	work := t.TempDir()
	img := uniqueImage(t, "docker.io/ctrseed-test/in-daemon:1", false, testseed.Gzip)
	if err := os.WriteFile(filepath.Join(work, "good.tar.gz"), ociSeed(t, img, testseed.Gzip), 0o644); err != nil {
		t.Fatal(err)
	}
	// A relative path: the CLI makes it absolute for the daemon.
	out, errOut, code := runCLI(t, work, "--address", d.Address, "--namespace", ns, "import", "--in-daemon", "good.tar.gz")
	if code != 0 {
		t.Fatalf("import --in-daemon: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, img.Name) {
		t.Errorf("output does not name %s:\n%s", img.Name, out)
	}
	if err := checkImage(c, ns, img.Name, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Log(), "importing seeds for a client") {
		t.Errorf("the daemon's log does not show it importing")
	}
	assertNoLeases(t, c, ns)

	bad := uniqueImage(t, "docker.io/ctrseed-test/in-daemon-bad:1", false, testseed.Gzip)
	corrupt(bad)
	badPath := filepath.Join(work, "bad.tar")
	if err := os.WriteFile(badPath, ociSeed(t, bad, testseed.Uncompressed), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, work, "--address", d.Address, "--namespace", ns, "import", "--in-daemon", "-q", badPath)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], badPath) || !strings.Contains(lines[0], "digest mismatch") {
		t.Errorf("corrupt seed in the daemon: exit %d, stderr %q; want exit 1 and one line naming %s and the digest mismatch", code, errOut, badPath)
	}
	t.Logf("corrupt seed: %s", errOut)
	if names := imageNames(t, c, ns); slices.Contains(names, bad.Name) {
		t.Errorf("image %s from the corrupt seed exists", bad.Name)
	}
	assertNoLeases(t, c, ns)

	_, errOut, code = runCLI(t, work, "--address", d.Address, "--namespace", ns, "import", "--in-daemon", filepath.Join(work, "missing.tar"))
	if code != 1 || !strings.Contains(errOut, "missing.tar") {
		t.Errorf("missing seed: exit %d, stderr %q", code, errOut)
	}

	stock := harness.StartDaemon(t, harness.DaemonOptions{})
	_, errOut, code = runCLI(t, work, "--address", stock.Address, "--namespace", ns, "import", "--in-daemon", "good.tar.gz")
	t.Logf("stock containerd: %s", errOut)
	if code != 1 || !strings.Contains(errOut, "containerd-seed") {
		t.Errorf("stock containerd: exit %d, stderr %q; want exit 1 and a hint that it needs containerd-seed", code, errOut)
	}
}
