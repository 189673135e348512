// Package test holds the end-to-end tests: ctr-seed and ctr against one
// private containerd per test package, and a real Distribution registry.
package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

var (
	daemon  *harness.Daemon
	ctrSeed string // the ctr-seed binary under test
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if ctrSeed, err = harness.BuildCommandMain("./cmd/ctr-seed"); err != nil {
		fmt.Fprintf(os.Stderr, "building ctr-seed: %v\n", err)
		return 1
	}
	// A test that cannot get a real containerd fails; it never skips.
	if daemon, err = harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true}); err != nil {
		fmt.Fprintf(os.Stderr, "starting containerd: %v\n", err)
		if daemon != nil {
			daemon.Cleanup()
		}
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "containerd log tail:\n%s\n", testutil.Tail(daemon.Log(), 40))
	}
	if err := daemon.Cleanup(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		return 1
	}
	return code
}

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// ctrSeedRun runs ctr-seed against the test daemon in namespace ns.
func ctrSeedRun(t *testing.T, ns string, args ...string) result {
	t.Helper()
	return runCtrSeed(t, harness.Cmd{Argv: append([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns}, args...)})
}

// runCtrSeed runs c (a ctr-seed command line) and fails the test if it
// cannot run or hangs.
func runCtrSeed(t *testing.T, c harness.Cmd) result {
	t.Helper()
	r, err := harness.Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code, took: r.Took}
}

// mustImport runs ctr-seed import and fails the test unless it exits 0.
func mustImport(t *testing.T, ns string, args ...string) result {
	t.Helper()
	r := ctrSeedRun(t, ns, append([]string{"import"}, args...)...)
	if r.code != 0 {
		t.Fatalf("ctr-seed import %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// ctr runs the pinned ctr against the test daemon in namespace ns.
func ctr(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := daemon.Ctr(t, append([]string{"--namespace", ns}, args...)...)
	if err != nil {
		t.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return out
}

var nsUnsafe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// namespace gives each test its own containerd namespace.
func namespace(t *testing.T) string {
	n := strings.ToLower(strings.Trim(nsUnsafe.ReplaceAllString(t.Name(), "-"), "-"))
	if len(n) > 60 {
		n = n[len(n)-60:]
	}
	return "t-" + strings.Trim(n, "-")
}

func dclient(t *testing.T) *client.Client { return daemon.Client(t) }

var nsCtx = harness.NSContext

// imageMap lists the image records of ns by name.
func imageMap(t *testing.T, ns string) map[string]images.Image {
	t.Helper()
	return harness.Images(t, dclient(t), ns)
}

// assertNothingLeft checks that ns holds no image, no ctr-seed lease, no
// snapshot and no ingest: what a failed import must leave.
func assertNothingLeft(t *testing.T, ns string) {
	t.Helper()
	harness.AssertNothingLeft(t, dclient(t), ns)
}

// keys is the keys of m, sorted.
func keys[V any](m map[string]V) []string { return testutil.Keys(m) }

// uniqueImage is testseed's standard image plus a layer unique to the test,
// so content is never already in the daemon from another test (containerd
// shares blobs across namespaces).
var uniqueImage = testutil.UniqueImage

// writeOCI writes an OCI seed (tar, optionally compressed) into the
// test's temp dir.
func writeOCI(t *testing.T, s *testseed.Seed, c testseed.Compression) string {
	t.Helper()
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.tar"), testutil.Archive(t, c, s.WriteOCITar))
}

func writeDocker(t *testing.T, imgs []testseed.DockerImage, c testseed.Compression) string {
	t.Helper()
	write := func(w ioWriter) error { return testseed.WriteDockerTar(w, imgs) }
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "docker.tar"), testutil.Archive(t, c, write))
}
