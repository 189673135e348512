package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The plugin and `ctr-seed import` bringing in the same seed at the same
// moment, against the same containerd-seed and namespace: both must
// succeed, and the daemon must end up with what one import leaves — one
// image record, each blob once, one committed snapshot per layer, no lease.

// concurrentLayerMiB sizes the seed's incompressible layers (uncompressed,
// so the seed is about their sum): an import of it takes 0.5-2 s on two
// cores, long enough for the other import to start while it runs, and
// four rounds still fit in about 15 s.
var concurrentLayerMiB = []int{64, 48, 32, 24, 16}

// pluginEarliest is the soonest the service starts importing a seed
// renamed into the seeds dir: it waits for a quiet period after the event,
// then (the fingerprint being new to it) for another, on a 200 ms tick:
// 1.1-1.3 s after the rename, in practice.
const pluginEarliest = 1100 * time.Millisecond

// cliLead is how long before pluginEarliest the "cli-leads" round starts
// the CLI: the plugin then joins an import a few hundred ms under way.
const cliLead = 250 * time.Millisecond

// concurrentSeed is testseed's standard image (three small gzip layers)
// plus one layer of random bytes per concurrentLayerMiB, unique to key.
func concurrentSeed(t *testing.T, name, key string) *testseed.Built {
	t.Helper()
	img := testseed.Standard(name, platforms.DefaultSpec(), false, testseed.Gzip)
	var seed [32]byte
	copy(seed[:], key)
	rng := rand.NewChaCha8(seed)
	for i, mib := range concurrentLayerMiB {
		b := make([]byte, mib<<20)
		rng.Read(b)
		img.Layers = append(img.Layers, testseed.Layer{Compression: testseed.Uncompressed, Files: []testseed.File{
			{Name: fmt.Sprintf("opt/concurrent/random-%d.bin", i), Content: b},
			{Name: "etc/test-name", Content: []byte(key)},
		}})
	}
	b, err := testseed.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedLease is one ctr-seed lease as the watcher saw it.
type seedLease struct {
	owner       string
	first, last time.Time
}

// leaseWatcher lists the ctr-seed leases of a namespace every few
// milliseconds: which imports ran, and whether they ran at the same time.
type leaseWatcher struct {
	stopc chan struct{}
	done  chan struct{}

	mu        sync.Mutex
	leases    map[string]*seedLease
	maxAtOnce int       // most ctr-seed leases seen in one listing
	both      time.Time // first listing that held two
	errs      []string
	seen      chan struct{} // closed at the first ctr-seed lease
	seenOnce  sync.Once
}

func watchLeases(c *client.Client, ns string) *leaseWatcher {
	w := &leaseWatcher{stopc: make(chan struct{}), done: make(chan struct{}), seen: make(chan struct{}), leases: map[string]*seedLease{}}
	filter := fmt.Sprintf("labels.%q", importer.LeaseLabel)
	go func() {
		defer close(w.done)
		for {
			ctx, cancel := context.WithTimeout(nsCtx(ns), 5*time.Second)
			ls, err := c.LeasesService().List(ctx, filter)
			cancel()
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, err.Error())
			}
			for _, l := range ls {
				sl := w.leases[l.ID]
				if sl == nil {
					sl = &seedLease{owner: l.Labels["ctr-seed/owner"], first: now}
					w.leases[l.ID] = sl
				}
				sl.last = now
			}
			if len(ls) > w.maxAtOnce {
				w.maxAtOnce = len(ls)
			}
			if len(ls) >= 2 && w.both.IsZero() {
				w.both = now
			}
			w.mu.Unlock()
			if len(ls) > 0 {
				w.seenOnce.Do(func() { close(w.seen) })
			}
			select {
			case <-w.stopc:
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *leaseWatcher) stop() {
	close(w.stopc)
	<-w.done
}

// cliRun is a `ctr-seed import` running in the background.
type cliRun struct {
	cmd           *exec.Cmd
	stdout        strings.Builder
	stderr        strings.Builder
	start, end    time.Time
	code          int
	done          chan struct{}
	waitErr       error
	pid           int
	startedAtLink time.Duration // after the seed was renamed into the seeds dir
}

func startImport(t *testing.T, address, ns string, args ...string) *cliRun {
	t.Helper()
	r := &cliRun{done: make(chan struct{})}
	r.cmd = exec.Command(ctrSeed, append([]string{"--address", address, "--namespace", ns, "import"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting ctr-seed import: %v", err)
	}
	r.pid = r.cmd.Process.Pid
	go func() {
		err := r.cmd.Wait()
		r.end = time.Now()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		default:
			r.code, r.waitErr = -1, err
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *cliRun) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump on stderr
		time.Sleep(time.Second)
		r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("ctr-seed import still running after %v; killed\nstdout:\n%s\nstderr:\n%s", timeout, r.stdout.String(), r.stderr.String())
	}
}

var (
	cliWroteRE    = regexp.MustCompile(`^wrote (sha256:[0-9a-f]{12}) \(([0-9.]+ [KMGT]?i?B) from seed\)$`)
	cliImportedRE = regexp.MustCompile(`^imported (\S+) (sha256:[0-9a-f]{64}): ([0-9.]+ [KMGT]?i?B) from seed, ([0-9.]+ [KMGT]?i?B) from registry, [0-9.]+s$`)
	logBytesRE    = regexp.MustCompile(`(?:^|\s)bytes="?([0-9.]+ [KMGT]?i?B)"?(?:\s|$)`)
)

func shortDigest(d digest.Digest) string { return "sha256:" + d.Encoded()[:12] }

// TestConcurrentPluginAndCLI drops a seed (184 MiB, eight layers) into the
// watched seeds dir of containerd-seed while `ctr-seed import` imports a
// copy of it into the plugin's namespace (k8s.io) through the daemon's
// socket. Four rounds, each on a fresh daemon (so the content is new to
// it), start the CLI at a different moment:
//
//   - "with-drop": in the same instant the seed is renamed into place. The
//     plugin waits for the seed to be quiet first (pluginEarliest), so a
//     fast CLI may be done before the plugin starts: the plugin must then
//     find everything there and write nothing.
//   - "cli-leads": cliLead before the plugin can start, so that the plugin
//     joins the CLI's import under way.
//   - "with-plugin-lease": as soon as the plugin's import holds its lease,
//     before it has written anything: both start together.
//   - "mid-plugin-write": once the plugin has a layer partly written.
//
// Each round checks that both imports succeed, whether they overlapped
// (both leases at once; required of the last two rounds, whose start is
// tied to the plugin's progress, and logged for the timed ones), and that
// the daemon holds exactly one import's worth: the image named once with
// the right target and labels, every blob committed once and written by
// one of the two only, one committed snapshot per layer and nothing else,
// no ingest and no lease left.
func TestConcurrentPluginAndCLI(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// One seed for every round: each round has a daemon of its own, so
	// its content is new to each.
	img := concurrentSeed(t, "docker.io/ctrseed-test/concurrent:1", t.Name())
	data := ociSeed(t, img, testseed.Uncompressed)
	t.Logf("seed of %d layers, %s, built in %v", len(img.Layers), progress.Bytes(len(data)), time.Since(start).Round(time.Millisecond))
	modes := []string{"with-drop", "cli-leads", "with-plugin-lease", "mid-plugin-write"}
	var overlapped []string
	for _, mode := range modes {
		if !t.Run(mode, func(t *testing.T) {
			if concurrentRound(t, mode, img, data) {
				overlapped = append(overlapped, mode)
			}
		}) {
			break
		}
	}
	t.Logf("total %v; the imports overlapped in rounds %v", time.Since(start).Round(time.Millisecond), overlapped)
}

// concurrentRound runs one round and reports whether the two imports
// overlapped.
func concurrentRound(t *testing.T, mode string, img *testseed.Built, data []byte) bool {
	t0 := time.Now()
	seeds := filepath.Join(t.TempDir(), "seeds")
	if err := os.Mkdir(seeds, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath, section := pluginConfig(t, seeds)
	ns, _ := section["namespace"].(string)
	labels := wantLabels(t, section)
	d := harness.StartDaemon(t, harness.DaemonOptions{Binary: containerdSeed, ConfigFile: cfgPath})
	c := d.Client(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd-seed log tail:\n%s", tail(d.Log(), 60))
		}
	})
	ready := time.Since(t0)

	// Two copies of the seed: the CLI's outside the seeds dir, the
	// plugin's under a hidden name inside, to be renamed into place. The
	// CLI gets the plugin's labels and pin, so that whoever writes the
	// record last, it is the same record.
	const seedName = "concurrent.tar"
	cliSeed := filepath.Join(t.TempDir(), seedName)
	if err := os.WriteFile(cliSeed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(seeds, "."+seedName+".partial")
	if err := os.WriteFile(hidden, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cliArgs := []string{"--pin"}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == labelPinned || k == labelManaged {
			continue // --pin, and the importer's own in k8s.io
		}
		cliArgs = append(cliArgs, "--label", k+"="+labels[k])
	}
	cliArgs = append(cliArgs, cliSeed)
	blobs := append([]ocispec.Descriptor{img.Manifest, img.Config}, img.Layers...)
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	t.Logf("daemon ready in %v, seed copies written in %v", ready.Round(time.Millisecond), (time.Since(t0) - ready).Round(time.Millisecond))

	w := watchLeases(c, ns)
	defer func() {
		select {
		case <-w.done:
		default:
			w.stop()
		}
	}()

	// Go.
	logAt := len(d.Log())
	linked := time.Now()
	if err := os.Rename(hidden, filepath.Join(seeds, seedName)); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "with-drop":
	case "cli-leads":
		time.Sleep(time.Until(linked.Add(pluginEarliest - cliLead)))
	case "with-plugin-lease":
		select {
		case <-w.seen:
		case <-time.After(importWait):
			t.Fatalf("no ctr-seed lease from the plugin %v after the drop", importWait)
		}
	case "mid-plugin-write":
		waitPluginWriting(t, c, ns, blobs)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	cli := startImport(t, d.Address, ns, cliArgs...)
	cli.startedAtLink = cli.start.Sub(linked)

	cli.wait(t, time.Minute)
	waitFor(t, importWait, "the plugin's attempt at the seed over", func() error {
		log := lastRun(d.Log())
		if imported(log, seedName) == 0 && len(errorLines(log, seedName)) == 0 {
			return fmt.Errorf("neither \"seed imported\" nor an error line for %s", seedName)
		}
		return nil
	})
	// Leases go before either side reports: none may be left by now.
	w.stop()
	// Room for a second, spurious import by the plugin.
	time.Sleep(1500 * time.Millisecond)
	log := lastRun(d.Log())

	// --- the CLI --------------------------------------------------------
	t.Logf("ctr-seed import started %v after the drop, exited %d after %v", cli.startedAtLink.Round(time.Millisecond),
		cli.code, cli.end.Sub(cli.start).Round(time.Millisecond))
	t.Logf("ctr-seed stdout:\n%s", strings.TrimRight(cli.stdout.String(), "\n"))
	if cli.code != 0 || cli.waitErr != nil {
		t.Errorf("ctr-seed import: exit %d (%v), want 0\nstderr:\n%s", cli.code, cli.waitErr, cli.stderr.String())
	}
	if s := cli.stderr.String(); s != "" {
		t.Errorf("ctr-seed import: stderr:\n%s", s)
	}
	cliWrote := map[string]bool{}
	var cliImported []string
	for _, l := range strings.Split(strings.TrimRight(cli.stdout.String(), "\n"), "\n") {
		if m := cliWroteRE.FindStringSubmatch(l); m != nil {
			if cliWrote[m[1]] {
				t.Errorf("ctr-seed says it wrote %s twice", m[1])
			}
			cliWrote[m[1]] = true
		} else if m := cliImportedRE.FindStringSubmatch(l); m != nil {
			cliImported = append(cliImported, l)
			if m[1] != img.Name || m[2] != img.Manifest.Digest.String() {
				t.Errorf("ctr-seed imported %s %s, want %s %s", m[1], m[2], img.Name, img.Manifest.Digest)
			}
		} else if l != "" {
			t.Errorf("unexpected ctr-seed stdout line %q", l)
		}
	}
	if len(cliImported) != 1 {
		t.Errorf("ctr-seed printed %d imported lines, want 1", len(cliImported))
	}

	// --- the plugin -----------------------------------------------------
	pluginLines := seedLines(log, "info", "seed imported", seedName)
	t.Logf("plugin:\n%s", strings.Join(pluginLines, "\n"))
	if len(pluginLines) != 1 {
		t.Errorf("%d \"seed imported\" lines for %s, want exactly 1", len(pluginLines), seedName)
	}
	if el := errorLines(log, seedName); len(el) > 0 {
		t.Errorf("error lines for %s:\n%s", seedName, strings.Join(el, "\n"))
	}
	if warn := warnLines(d.Log()[logAt:]); len(warn) > 0 {
		t.Logf("warning/error lines in the daemon's log:\n%s", strings.Join(warn, "\n"))
	}
	assertState(t, filepath.Join(d.Root, pluginID), map[string][]string{seedName: {img.Name}})

	// --- who wrote what: each blob by exactly one of the two ------------
	var pluginShare int64
	var cliShare []string
	for _, b := range blobs {
		if cliWrote[shortDigest(b.Digest)] {
			cliShare = append(cliShare, fmt.Sprintf("%s (%s)", shortDigest(b.Digest), progress.Bytes(b.Size)))
		} else {
			pluginShare += b.Size
		}
	}
	for s := range cliWrote {
		if !slices.ContainsFunc(blobs, func(b ocispec.Descriptor) bool { return shortDigest(b.Digest) == s }) {
			t.Errorf("ctr-seed wrote %s, no blob of the image", s)
		}
	}
	t.Logf("ctr-seed wrote %d of %d blobs: %v; the plugin the other %s of %s", len(cliShare), len(blobs), cliShare,
		progress.Bytes(pluginShare), progress.Bytes(total))
	if len(pluginLines) == 1 {
		m := logBytesRE.FindStringSubmatch(pluginLines[0])
		switch {
		case m == nil:
			t.Errorf("no bytes= field in the plugin's line: %s", pluginLines[0])
		case m[1] != progress.Bytes(pluginShare).String():
			t.Errorf("the plugin wrote %s, want %s (every blob the CLI did not write, and no other): a blob was written twice or not at all",
				m[1], progress.Bytes(pluginShare))
		}
	}

	// --- did they race? --------------------------------------------------
	w.mu.Lock()
	var cliLease, pluginLease *seedLease
	var other []string
	for id, l := range w.leases {
		parts := strings.Split(l.owner, ":")
		switch {
		case len(parts) == 3 && parts[1] == strconv.Itoa(cli.pid):
			if cliLease != nil {
				other = append(other, id+" (a second one of the CLI)")
			}
			cliLease = l
		case pluginLease == nil:
			pluginLease = l
		default:
			other = append(other, id+" owned by "+l.owner)
		}
	}
	maxAt, both, werrs := w.maxAtOnce, w.both, w.errs
	w.mu.Unlock()
	if len(werrs) > 0 {
		t.Errorf("listing leases failed %d times: %v", len(werrs), werrs[0])
	}
	if len(other) > 0 {
		t.Errorf("more ctr-seed leases than one per import: %v", other)
	}
	rel := func(tm time.Time) string { return tm.Sub(linked).Round(time.Millisecond).String() }
	held := func(l *seedLease) string {
		if l == nil {
			// An import with nothing left to do can be over between two
			// listings.
			return "not seen"
		}
		return rel(l.first) + ".." + rel(l.last)
	}
	t.Logf("leases held (after the drop): plugin %s, CLI %s; at most %d at once", held(pluginLease), held(cliLease), maxAt)
	overlap := !both.IsZero()
	switch {
	case overlap:
		t.Logf("both imports held their leases at once from %s", rel(both))
	case mode != "with-drop" && mode != "cli-leads":
		// The CLI started while the plugin was importing.
		t.Errorf("the two imports never held their leases at the same time: no race was exercised")
	default:
		t.Logf("the imports did not overlap in this round: one was done before the other began")
	}

	// --- what the daemon holds -----------------------------------------
	ctx := nsCtx(ns)
	if got := imageNames(t, c, ns); !slices.Equal(got, []string{img.Name}) {
		t.Errorf("images in %s: %v, want exactly [%s]", ns, got, img.Name)
	}
	if rec, err := c.ImageService().Get(ctx, img.Name); err != nil {
		t.Errorf("image %s: %v", img.Name, err)
	} else {
		if rec.Target.Digest != img.Manifest.Digest || rec.Target.Size != img.Manifest.Size || rec.Target.MediaType != img.Manifest.MediaType {
			t.Errorf("image %s: target %s %s (%d bytes), want %s %s (%d bytes)", img.Name, rec.Target.MediaType, rec.Target.Digest,
				rec.Target.Size, img.Manifest.MediaType, img.Manifest.Digest, img.Manifest.Size)
		}
		if !maps.Equal(rec.Labels, labels) {
			t.Errorf("image %s: labels %v, want %v", img.Name, rec.Labels, labels)
		}
	}
	if err := checkImage(c, ns, img.Name, labels); err != nil {
		t.Error(err)
	}

	// Content: exactly the image's blobs, each committed with its size;
	// nothing half-written.
	wantBlobs := map[digest.Digest]int64{}
	for _, b := range blobs {
		wantBlobs[b.Digest] = b.Size
	}
	gotBlobs := map[digest.Digest]int64{}
	if err := c.ContentStore().Walk(ctx, func(i content.Info) error {
		gotBlobs[i.Digest] = i.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(gotBlobs, wantBlobs) {
		t.Errorf("content in %s:\n got  %v\n want %v", ns, gotBlobs, wantBlobs)
	}
	if sts, err := c.ContentStore().ListStatuses(ctx); err != nil {
		t.Fatal(err)
	} else {
		for _, s := range sts {
			t.Errorf("ingest left in the content store: %s, %d of %d bytes", s.Ref, s.Offset, s.Total)
		}
	}
	onDisk := dirNames(t, filepath.Join(d.Root, "io.containerd.content.v1.content", "blobs", "sha256"))
	var wantOnDisk []string
	for dg := range wantBlobs {
		wantOnDisk = append(wantOnDisk, dg.Encoded())
	}
	slices.Sort(wantOnDisk)
	if !slices.Equal(onDisk, wantOnDisk) {
		t.Errorf("blob files on disk: %v, want %v", onDisk, wantOnDisk)
	}
	if in := dirNames(t, filepath.Join(d.Root, "io.containerd.content.v1.content", "ingest")); len(in) > 0 {
		t.Errorf("ingest dirs left on disk: %v", in)
	}

	// Snapshots: one committed per layer, chained by chain ID; nothing else.
	chain := identity.ChainIDs(slices.Clone(img.DiffIDs))
	want := make([]string, len(chain))
	for i, id := range chain {
		parent := ""
		if i > 0 {
			parent = chain[i-1].String()
		}
		want[i] = id.String() + "<-" + parent
	}
	slices.Sort(want)
	var committed, others []string
	if err := c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindCommitted {
			committed = append(committed, i.Name+"<-"+i.Parent)
		} else {
			others = append(others, i.Kind.String()+":"+i.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(committed)
	if !slices.Equal(committed, want) {
		t.Errorf("committed snapshots:\n got  %v\n want %v", committed, want)
	}
	if len(others) > 0 {
		t.Errorf("snapshots other than committed ones left: %v", others)
	}
	if info, err := c.SnapshotService("overlayfs").Stat(ctx, chain[len(chain)-1].String()); err != nil {
		t.Errorf("snapshot of the image's chain ID: %v", err)
	} else if info.Kind != snapshots.KindCommitted {
		t.Errorf("snapshot of the image's chain ID is %v, want committed", info.Kind)
	}
	if dirs := dirNames(t, filepath.Join(d.Root, "io.containerd.snapshotter.v1.overlayfs", "snapshots")); len(dirs) != len(chain) {
		t.Errorf("%d snapshot dirs on disk, want %d (one per layer): %v", len(dirs), len(chain), dirs)
	}

	// Leases: none of ctr-seed's in any namespace, and none at all here.
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nss {
		assertNoLeases(t, c, n)
	}
	if ls, err := c.LeasesService().List(ctx); err != nil {
		t.Fatal(err)
	} else if len(ls) > 0 {
		t.Errorf("leases left in %s: %v", ns, ls)
	}

	if err := criHas(d.Address, []string{img.Name}); err != nil {
		t.Error(err)
	}
	t.Logf("round took %v", time.Since(t0).Round(time.Millisecond))
	return overlap
}

// waitPluginWriting waits until the plugin is writing one of blobs into
// the content store: an ingest of it is under way.
func waitPluginWriting(t *testing.T, c *client.Client, ns string, blobs []ocispec.Descriptor) {
	t.Helper()
	deadline := time.Now().Add(importWait)
	for time.Now().Before(deadline) {
		sts, err := c.ContentStore().ListStatuses(nsCtx(ns))
		if err != nil {
			t.Fatalf("ListStatuses: %v", err)
		}
		for _, s := range sts {
			for _, b := range blobs {
				if b.Size > 1<<20 && strings.Contains(s.Ref, b.Digest.Encoded()) && s.Offset > 0 && s.Offset < s.Total {
					t.Logf("the plugin is writing %s: %d of %d bytes", shortDigest(b.Digest), s.Offset, s.Total)
					return
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no ingest of a layer by the plugin within %v", importWait)
}

// warnLines are the daemon's level=warning and level=error lines.
func warnLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=warning") || strings.Contains(l, "level=error") {
			out = append(out, l)
		}
	}
	return out
}

// dirNames lists the names in dir, sorted ("" if it does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
