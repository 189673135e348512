// Package faults_test holds the fault tests of `ctr-seed import`: the
// process killed (SIGKILL) or interrupted (SIGINT, SIGTERM) midway,
// containerd restarted under it, two imports of one seed at once, and a
// daemon whose disk fills up. Every test starts its own private containerd
// (test/harness), so a fault in one cannot leak into another, and all of
// them import the same large seed, written once by TestMain.
package faults_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/ctr-seed/ctr-seed/importer"
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
	if ctrSeed, err = harness.BuildCommandMain("./cmd/ctr-seed"); err != nil {
		fmt.Fprintf(os.Stderr, "building ctr-seed: %v\n", err)
		return 1
	}
	if _, err := harness.BinariesMain(); err != nil {
		fmt.Fprintf(os.Stderr, "containerd binaries: %v\n", err)
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

// startDaemon is a private containerd for one test; its log tail is
// printed if the test fails.
func startDaemon(t *testing.T, opts harness.DaemonOptions) *harness.Daemon {
	t.Helper()
	opts.DisableCRI = true
	d := harness.StartDaemon(t, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log tail:\n%s", tailLines(d.Log(), 40))
		}
	})
	return d
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func nsCtx(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

// ---- running ctr-seed ----

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int            // exit code; -1 if killed by a signal
	signal         syscall.Signal // the signal that killed it, if any
	elapsed        time.Duration  // from start to exit
}

func (r result) String() string {
	how := fmt.Sprintf("exit %d", r.code)
	if r.signal != 0 {
		how = "killed by " + r.signal.String()
	}
	return fmt.Sprintf("%s after %v\nstdout:\n%s\nstderr:\n%s", how, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// proc is a ctr-seed process running in the background.
type proc struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	start     time.Time
	done      chan struct{}
	res       result
}

// startCtrSeed starts ctr-seed against d in namespace ns. The process is
// killed at cleanup if the test left it running.
func startCtrSeed(t *testing.T, d *harness.Daemon, ns string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(ctrSeed, append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting ctr-seed: %v", err)
	}
	go func() {
		err := p.cmd.Wait()
		p.res = result{stdout: p.out.String(), stderr: p.errb.String(), elapsed: time.Since(p.start)}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.res.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.res.signal = ws.Signal()
			}
		case err != nil:
			p.res.code, p.res.stderr = -1, p.res.stderr+"\n(wait: "+err.Error()+")"
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit, failing the test after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	select {
	case <-p.done:
		return p.res
	case <-time.After(timeout):
		p.cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump on stderr
		time.Sleep(time.Second)
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("ctr-seed %v still running after %v; killed\n%s", p.cmd.Args[5:], timeout, p.res)
		return result{}
	}
}

// run runs ctr-seed to completion.
func run(t *testing.T, d *harness.Daemon, ns string, args ...string) result {
	t.Helper()
	return startCtrSeed(t, d, ns, args...).wait(t, 2*time.Minute)
}

// mustImport imports the seed and fails the test unless ctr-seed exits 0.
func mustImport(t *testing.T, d *harness.Daemon, ns string) result {
	t.Helper()
	r := run(t, d, ns, "import", seed.Path)
	if r.code != 0 {
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
func waitMidway(t *testing.T, c *client.Client, ns string, p *proc) (content.Status, int) {
	t.Helper()
	ctx := nsCtx(ns)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("ctr-seed exited before it was midway:\n%s", p.res)
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
	t.Fatalf("ctr-seed not midway after a minute: ingests %v", ingests(t, c, ns))
	return content.Status{}, 0
}

// ---- stdout ----

var (
	wroteRE    = regexp.MustCompile(`^wrote (sha256:[0-9a-f]{12}) \([0-9]+\.[0-9] [KMGTPEZY]?i?B from (seed|registry)\)$`)
	importedRE = regexp.MustCompile(`^imported (\S+) (sha256:[0-9a-f]{64}): ([0-9]+\.[0-9] [KMGTPEZY]?i?B) from seed, ([0-9]+\.[0-9] [KMGTPEZY]?i?B) from registry, ([0-9]+\.[0-9]+)s$`)
)

// parseStdout splits ctr-seed import's (non-TTY) stdout into the short
// digests of its wrote lines and its summary lines; any other line fails
// the test.
func parseStdout(t *testing.T, stdout string) (wrote []string, imported []string) {
	t.Helper()
	for _, l := range lines(stdout) {
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

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func short(d digest.Digest) string { return d.Algorithm().String() + ":" + d.Encoded()[:12] }

// ---- what the daemon holds ----

// imageTargets lists the image records of ns as name → target.
func imageTargets(t *testing.T, c *client.Client, ns string) map[string]digest.Digest {
	t.Helper()
	imgs, err := c.ImageService().List(nsCtx(ns))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]digest.Digest{}
	for _, img := range imgs {
		out[img.Name] = img.Target.Digest
	}
	return out
}

// snapshotList is every snapshot of ns: committed ones as name<-parent,
// others as kind:name.
func snapshotList(t *testing.T, c *client.Client, ns string) (committed, other []string) {
	t.Helper()
	err := c.SnapshotService("overlayfs").Walk(nsCtx(ns), func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindCommitted {
			committed = append(committed, i.Name+"<-"+i.Parent)
		} else {
			other = append(other, i.Kind.String()+":"+i.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(committed)
	slices.Sort(other)
	return committed, other
}

// seedLeases lists the leases ctr-seed created in ns.
func seedLeases(t *testing.T, c *client.Client, ns string) []leases.Lease {
	t.Helper()
	ls, err := c.LeasesService().List(nsCtx(ns), fmt.Sprintf("labels.%q", importer.LeaseLabel))
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// ingests lists the partial writes ns holds.
func ingests(t *testing.T, c *client.Client, ns string) []string {
	t.Helper()
	sts, err := c.ContentStore().ListStatuses(nsCtx(ns))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range sts {
		out = append(out, fmt.Sprintf("%s (%d/%d)", st.Ref, st.Offset, st.Total))
	}
	return out
}

// blobsPresent lists which of the seed's blobs ns can see.
func blobsPresent(t *testing.T, c *client.Client, ns string) []string {
	t.Helper()
	var out []string
	for _, d := range seed.Blobs() {
		if _, err := c.ContentStore().Info(nsCtx(ns), d.Digest); err == nil {
			out = append(out, short(d.Digest))
		}
	}
	return out
}

// assertNothingLeft checks that ns holds no image, no ctr-seed lease, no
// snapshot, no ingest and none of the seed's blobs: what a failed or
// interrupted import must leave.
func assertNothingLeft(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	if imgs := imageTargets(t, c, ns); len(imgs) != 0 {
		t.Errorf("images left behind: %v", imgs)
	}
	if ls := seedLeases(t, c, ns); len(ls) != 0 {
		t.Errorf("leases left behind: %v", ls)
	}
	if committed, other := snapshotList(t, c, ns); len(committed)+len(other) != 0 {
		t.Errorf("snapshots left behind: %v %v", committed, other)
	}
	if in := ingests(t, c, ns); len(in) != 0 {
		t.Errorf("ingests left behind: %v", in)
	}
	if bs := blobsPresent(t, c, ns); len(bs) != 0 {
		t.Errorf("blobs left behind: %v", bs)
	}
}

// assertImported checks that ns holds exactly the seed's image, unpacked,
// with no ctr-seed lease and no partial write left.
func assertImported(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	want := map[string]digest.Digest{seed.Name: seed.Manifest.Digest}
	if got := imageTargets(t, c, ns); !maps.Equal(got, want) {
		t.Errorf("images in %s: %v, want %v", ns, got, want)
	}
	img, err := c.GetImage(nsCtx(ns), seed.Name)
	if err != nil {
		t.Fatalf("image %s: %v", seed.Name, err)
	}
	if ok, err := img.IsUnpacked(nsCtx(ns), "overlayfs"); err != nil || !ok {
		t.Errorf("image %s: unpacked = %v, %v", seed.Name, ok, err)
	}
	if ls := seedLeases(t, c, ns); len(ls) != 0 {
		t.Errorf("leases left in %s: %v", ns, ls)
	}
	if in := ingests(t, c, ns); len(in) != 0 {
		t.Errorf("ingests left in %s: %v", ns, in)
	}
	if _, other := snapshotList(t, c, ns); len(other) != 0 {
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
	if got, want := imageTargets(t, c, ns), imageTargets(t, c, clean); !maps.Equal(got, want) {
		t.Errorf("images: %v, a clean import gives %v", got, want)
	}
	got, _ := snapshotList(t, c, ns)
	want, _ := snapshotList(t, c, clean)
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
	ls := lines(stderr)
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
