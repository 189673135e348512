// Package faults_test holds the fault tests of `ctr-seed import`: the
// process killed (SIGKILL) or interrupted (SIGINT, SIGTERM) midway,
// containerd restarted under it, two imports of one seed at once, and a
// daemon whose disk fills up. Every test starts its own private containerd
// (test/harness), so a fault in one cannot leak into another, and all of
// them import the same large seed, written once by TestMain.
package faults_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
)

// bigLayerBytes sizes the random layer: large enough that its write lasts
// a few hundred milliseconds (the tests act while it is in flight) and
// that it overflows the disk-full test's 64 MiB tmpfs, small enough to keep
// the package well under its time budget on two cores.
const bigLayerBytes = 128 << 20

var (
	ctrSeed string // the ctr-seed binary under test
	seed    *bigSeed
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	var err error
	if ctrSeed, _, err = harness.CtrSeedMain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "faults-seed-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	if seed, err = writeBigSeed(dir, "faults-v1", bigLayerBytes); err != nil {
		fmt.Fprintf(os.Stderr, "writing the seed: %v\n", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("seed %s written in %v (big layer %s, %d bytes)\n", seed.Path, time.Since(t0).Round(time.Millisecond), seed.Big.Digest, seed.Big.Size)
	}
	return m.Run()
}

// startDaemon is a private containerd for one test, CRI off.
func startDaemon(t *testing.T, opts harness.DaemonOptions) *harness.Daemon {
	t.Helper()
	opts.DisableCRI = true
	return harness.StartDaemon(t, opts)
}

var nsCtx = harness.NSContext

// ---- running ctr-seed ----

type result = harness.Result

// startCtrSeed starts ctr-seed against d in namespace ns, in the
// background.
func startCtrSeed(t *testing.T, d *harness.Daemon, ns string, args ...string) *harness.Proc {
	t.Helper()
	return harness.Start(t, harness.Cmd{Argv: append([]string{ctrSeed, "--address", d.Address, "--namespace", ns}, args...)})
}

// run runs ctr-seed to completion.
func run(t *testing.T, d *harness.Daemon, ns string, args ...string) result {
	t.Helper()
	return startCtrSeed(t, d, ns, args...).Wait(t, 2*time.Minute)
}

// mustImport imports the seed and fails the test unless ctr-seed exits 0.
func mustImport(t *testing.T, d *harness.Daemon, ns string) result {
	t.Helper()
	r := run(t, d, ns, "import", seed.Path)
	if r.Code != 0 {
		t.Fatalf("ctr-seed import into %s: %s", ns, r)
	}
	return r
}

// waitMidway waits until ctr-seed (p) is midway through importing the
// seed into ns: the daemon holds a partial ingest of the big layer (at
// least a tenth of it, and not all of it) and, normally, a snapshot (the
// small layers are unpacked while the big one is written; on a loaded
// machine that can lag, so past 60% of the big layer it does not wait for
// one). It returns the ingest's status and the number of snapshots, and
// fails the test if p exits first or the moment never comes.
func waitMidway(t *testing.T, c *client.Client, ns string, p *harness.Proc) (content.Status, int) {
	t.Helper()
	ctx := nsCtx(ns)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if err := p.Running(); err != nil {
			t.Fatalf("before it was midway: %v", err)
		}
		sts, err := c.ContentStore().ListStatuses(ctx)
		if err != nil {
			t.Fatalf("listing ingests: %v", err)
		}
		for _, st := range sts {
			if strings.Contains(st.Ref, seed.Big.Digest.Encoded()) && st.Offset >= seed.Big.Size/10 && st.Offset < seed.Big.Size {
				n := 0
				if err := c.SnapshotService("overlayfs").Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }); err != nil {
					t.Fatalf("listing snapshots: %v", err)
				}
				if n > 0 || st.Offset >= seed.Big.Size*6/10 {
					return st, n
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("ctr-seed not midway after a minute: ingests %v", harness.Ingests(t, c, ns))
	return content.Status{}, 0
}

// importMidway starts a daemon of the test's own and an import of the
// seed into ns, and returns them once the import is midway, with what
// waitMidway saw. The import is frozen there (harness.Proc.Freeze): the
// big layer goes into the daemon's ingest file in a fraction of a second,
// so a fault could otherwise land after its commit. The caller thaws it
// once the fault is in place.
func importMidway(t *testing.T, ns string) (*harness.Daemon, *client.Client, *harness.Proc, content.Status, int) {
	t.Helper()
	d := startDaemon(t, harness.DaemonOptions{})
	c := d.Client(t)
	p := startCtrSeed(t, d, ns, "import", seed.Path)
	st, snaps := waitMidway(t, c, ns, p)
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContentStore().Info(nsCtx(ns), seed.Big.Digest); err == nil {
		t.Fatalf("the big layer was committed before the import was frozen: make bigLayerBytes larger")
	}
	return d, c, p, st, snaps
}

// ---- stdout ----

var (
	wroteRE    = harness.WroteRE
	importedRE = harness.SummaryRE
)

// parseStdout splits ctr-seed import's (non-TTY) stdout into the short
// digests of its wrote lines and its summary lines; any other line fails
// the test.
func parseStdout(t *testing.T, stdout string) (wrote []string, imported []string) {
	t.Helper()
	for _, l := range testutil.Lines(stdout) {
		if m := wroteRE.FindStringSubmatch(l); m != nil {
			wrote = append(wrote, m[1])
		} else if importedRE.MatchString(l) {
			imported = append(imported, l)
		} else {
			t.Errorf("unexpected stdout line %q", l)
		}
	}
	return wrote, imported
}

// ---- what the daemon holds ----

// blobsPresent lists which of the seed's blobs ns can see.
func blobsPresent(t *testing.T, c *client.Client, ns string) []string {
	t.Helper()
	var out []string
	for _, d := range seed.Blobs() {
		if _, err := c.ContentStore().Info(nsCtx(ns), d.Digest); err == nil {
			out = append(out, testutil.Short(d.Digest))
		}
	}
	return out
}

// assertNothingLeft checks that ns holds nothing of the seed: what a
// failed or interrupted import must leave.
func assertNothingLeft(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	var blobs []digest.Digest
	for _, d := range seed.Blobs() {
		blobs = append(blobs, d.Digest)
	}
	harness.AssertNothingLeft(t, c, ns, blobs...)
}

// assertFailedOutput checks what a failed or interrupted import printed:
// no summary line, no wrote line for the big layer (whose write did not
// complete: why), and only ctr-seed's own lines on stderr, which it
// returns.
func assertFailedOutput(t *testing.T, r result, why string) []string {
	t.Helper()
	wrote, imported := parseStdout(t, r.Stdout)
	if len(imported) != 0 {
		t.Errorf("imported lines from a failed import: %q", imported)
	}
	if slices.Contains(wrote, testutil.Short(seed.Big.Digest)) {
		t.Errorf("a wrote line for the big layer, %s:\n%s", why, r.Stdout)
	}
	return errorLines(t, r.Stderr)
}

// assertImported checks that ns holds exactly the seed's image, unpacked,
// with no ctr-seed lease and no partial write left.
func assertImported(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	want := map[string]digest.Digest{seed.Name: seed.Manifest.Digest}
	if got := harness.ImageTargets(t, c, ns); !maps.Equal(got, want) {
		t.Errorf("images in %s: %v, want %v", ns, got, want)
	}
	img, err := c.GetImage(nsCtx(ns), seed.Name)
	if err != nil {
		t.Fatalf("image %s: %v", seed.Name, err)
	}
	if ok, err := img.IsUnpacked(nsCtx(ns), "overlayfs"); err != nil || !ok {
		t.Errorf("image %s: unpacked = %v, %v", seed.Name, ok, err)
	}
	harness.AssertNoSeedLeases(t, c, ns)
	if in := harness.Ingests(t, c, ns); len(in) != 0 {
		t.Errorf("ingests left in %s: %v", ns, in)
	}
	if _, other := harness.Snapshots(t, c, ns); len(other) != 0 {
		t.Errorf("uncommitted snapshots left in %s: %v", ns, other)
	}
}

// assertSameAsClean imports the seed cleanly into a fresh namespace of the
// same daemon and checks that ns holds the same: image targets and
// snapshot chain.
func assertSameAsClean(t *testing.T, d *harness.Daemon, c *client.Client, ns string) {
	t.Helper()
	clean := ns + "-clean"
	mustImport(t, d, clean)
	assertImported(t, c, clean)
	if got, want := harness.ImageTargets(t, c, ns), harness.ImageTargets(t, c, clean); !maps.Equal(got, want) {
		t.Errorf("images: %v, a clean import gives %v", got, want)
	}
	got, _ := harness.Snapshots(t, c, ns)
	want, _ := harness.Snapshots(t, c, clean)
	if len(want) != len(seed.Layers) {
		t.Errorf("a clean import made %d snapshots, want one per layer (%d): %v", len(want), len(seed.Layers), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("snapshot chain:\n got  %v\n want %v (clean import)", got, want)
	}
}

// errorLines checks that every line on stderr is ctr-seed's own and returns them.
func errorLines(t *testing.T, stderr string) []string {
	t.Helper()
	ls := testutil.Lines(stderr)
	for _, l := range ls {
		if !strings.HasPrefix(l, "ctr-seed: ") {
			t.Errorf("stderr line not ctr-seed's: %q", l)
		}
	}
	return ls
}

// imageLine is the start of the line ctr-seed prints for a failed image.
func imageLine() string {
	return fmt.Sprintf("ctr-seed: seed %s: image %s (%s): ", seed.Path, seed.Name, seed.Manifest.Digest)
}
