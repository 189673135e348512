package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
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
// renamed into the seeds dir: it waits for the seed to stay quiet for a
// quiet period (500 ms in importer/seeddir), seen on a 200 ms tick: its
// lease appears 0.6-0.7 s after the rename, in practice.
const pluginEarliest = 500 * time.Millisecond

// roundAttempts bounds the timed rounds. Whether their imports overlap
// depends on how fast this machine imports; a round whose imports did not
// overlap is run again on a fresh daemon, and one that never overlaps in
// this many attempts fails: it exercised no race.
const roundAttempts = 3

// lockedRefRE is the one error line the daemon may log while the two
// imports race: containerd's content service (contentserver.go) logging
// that it refused a second writer of a blob whose ingest the other import
// holds (plugins/content/local/locks.go: "ref ... locked", Unavailable).
// The refused side's content.OpenWriter waits and retries on Unavailable
// and then finds the blob committed: it is how containerd keeps two
// writers of one blob apart, not a failure. It must name a blob of the
// image.
var lockedRefRE = regexp.MustCompile(`level=error msg="\(\*service\)\.Write failed" error="rpc error: code = Unavailable desc = ref \S*?(sha256:[0-9a-f]{64}) locked for `)

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
	b := testutil.Build(t, img)
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

// startImport starts `ctr-seed import` against address in ns.
func startImport(t *testing.T, address, ns string, args ...string) *harness.Proc {
	t.Helper()
	return harness.Start(t, harness.Cmd{Argv: append([]string{ctrSeed, "--address", address, "--namespace", ns, "import"}, args...)})
}

var (
	cliWroteRE    = harness.WroteRE
	cliImportedRE = harness.SummaryRE
	logBytesRE    = regexp.MustCompile(`(?:^|\s)bytes="?([0-9.]+ [KMGT]?i?B)"?(?:\s|$)`)
)

// TestConcurrentPluginAndCLI drops a seed (184 MiB, eight layers) into the
// watched seeds dir of containerd-seed while `ctr-seed import` imports a
// copy of it into the plugin's namespace (k8s.io) through the daemon's
// socket. Four rounds, each on a fresh daemon (so the content is new to
// it), start the CLI at a different moment:
//
//   - "with-drop": in the same instant the seed is renamed into place. The
//     plugin waits for the seed to be quiet first (pluginEarliest), so the
//     CLI has a head start of about that much.
//   - "cli-leads": cliLead before the plugin can start, so that the plugin
//     joins the CLI's import under way.
//   - "with-plugin-lease": as soon as the plugin's import holds its lease,
//     before it has written anything: both start together.
//   - "mid-plugin-write": once the plugin has a layer partly written.
//
// In every round the two imports must overlap (both leases seen at once):
// otherwise no race was exercised. The timed rounds, which can miss on a
// fast or a loaded machine, get up to roundAttempts fresh daemons for it.
// Each attempt checks that both imports succeed, that the daemon logs no
// warning or error (but lockedRefRE's), and that it holds exactly
// one import's worth: the image named once with the right target and
// labels, every blob committed once and written by one of the two only,
// one committed snapshot per layer and nothing else, no ingest and no
// lease left.
func TestConcurrentPluginAndCLI(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// One seed for every round: each round has a daemon of its own, so
	// its content is new to each.
	img := concurrentSeed(t, "docker.io/ctrseed-test/concurrent:1", t.Name())
	data := ociSeed(t, img, testseed.Uncompressed)
	t.Logf("seed of %d layers, %s, built in %v", len(img.Layers), progress.Bytes(len(data)), time.Since(start).Round(time.Millisecond))
	modes := []string{"with-drop", "cli-leads", "with-plugin-lease", "mid-plugin-write"}
	for _, mode := range modes {
		if !t.Run(mode, func(t *testing.T) {
			attempts := 1
			if mode == "with-drop" || mode == "cli-leads" {
				attempts = roundAttempts
			}
			for i := 1; ; i++ {
				var overlap bool
				if !t.Run(fmt.Sprintf("attempt-%d", i), func(t *testing.T) {
					overlap = concurrentRound(t, mode, img, data)
				}) || overlap {
					return
				}
				if i == attempts {
					t.Fatalf("the two imports never held their leases at the same time in %d attempt(s): no race was exercised", attempts)
				}
				t.Logf("attempt %d: the imports did not overlap; again, on a fresh daemon", i)
			}
		}) {
			break
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// concurrentRound runs one attempt of a round and reports whether the two
// imports overlapped.
func concurrentRound(t *testing.T, mode string, img *testseed.Built, data []byte) bool {
	t0 := time.Now()
	seeds := newSeedsDir(t)
	pd := startPlugin(t, seeds, harness.DaemonOptions{})
	d, c, ns, labels := pd.d, pd.c, pd.ns, pd.labels
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

	ev := pd.watch(t)
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
	cliAfterLink := cli.Started.Sub(linked)
	res := cli.Wait(t, time.Minute)
	ev.wait(t, importWait, "the plugin's attempt at the seed over", func(evs []seeddir.Event) error {
		if len(eventsOf(evs, seeddir.Imported, seedName)) == 0 && len(eventsOf(evs, seeddir.Failed, seedName)) == 0 {
			return fmt.Errorf("neither an imported nor a failed event for %s:\n%s", seedName, describe(evs))
		}
		return nil
	})
	// Leases go before either side reports: none may be left by now.
	w.stop()
	// A second, spurious import by the plugin would have come by the time
	// the watch has judged a canary dropped after it.
	ev.settle(t)
	log := lastRun(d.Log())
	if n, f := len(ev.of(t, seeddir.Imported, seedName)), ev.of(t, seeddir.Failed, seedName); n != 1 || len(f) != 0 {
		t.Errorf("%d imported events for %s, failed events %+v; want 1 and none", n, seedName, f)
	}

	// --- the CLI --------------------------------------------------------
	t.Logf("ctr-seed import started %v after the drop, exited %d after %v", cliAfterLink.Round(time.Millisecond),
		res.Code, res.Took.Round(time.Millisecond))
	t.Logf("ctr-seed stdout:\n%s", strings.TrimRight(res.Stdout, "\n"))
	if res.Code != 0 {
		t.Errorf("ctr-seed import: %s, want exit 0", res)
	}
	if res.Stderr != "" {
		t.Errorf("ctr-seed import: stderr:\n%s", res.Stderr)
	}
	cliWrote := map[string]bool{}
	var cliImported []string
	for _, l := range testutil.Lines(res.Stdout) {
		if m := cliWroteRE.FindStringSubmatch(l); m != nil {
			if cliWrote[m[1]] {
				t.Errorf("ctr-seed says it wrote %s twice", m[1])
			}
			cliWrote[m[1]] = true
		} else if m := cliImportedRE.FindStringSubmatch(l); m != nil {
			cliImported = append(cliImported, l)
			if m[1] != "imported" || m[2] != img.Name || m[3] != img.Manifest.Digest.String() {
				t.Errorf("ctr-seed %s %s %s, want imported %s %s", m[1], m[2], m[3], img.Name, img.Manifest.Digest)
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
	warn, locked := warnLines(d.Log()[logAt:], blobs)
	if len(warn) > 0 {
		t.Errorf("warning/error lines in the daemon's log since the drop:\n%s", strings.Join(warn, "\n"))
	}
	t.Logf("%d \"ref locked\" lines: one import waited for the other's write of a blob", locked)
	assertState(t, filepath.Join(d.Root, pluginID), map[string][]string{seedName: {img.Name}})

	// --- who wrote what: each blob by exactly one of the two ------------
	var pluginShare int64
	var cliShare []string
	for _, b := range blobs {
		if cliWrote[testutil.Short(b.Digest)] {
			cliShare = append(cliShare, fmt.Sprintf("%s (%s)", testutil.Short(b.Digest), progress.Bytes(b.Size)))
		} else {
			pluginShare += b.Size
		}
	}
	for s := range cliWrote {
		if !slices.ContainsFunc(blobs, func(b ocispec.Descriptor) bool { return testutil.Short(b.Digest) == s }) {
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
		case len(parts) == 4 && parts[2] == strconv.Itoa(cli.Pid()): // host:pidns:pid:start
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
	if overlap {
		t.Logf("both imports held their leases at once from %s", rel(both))
	} else {
		t.Logf("the imports did not overlap: one was done before the other began")
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
		// Both copies of the seed have its name: the provenance agrees
		// whichever import recorded last.
		want := maps.Clone(labels)
		want[labelSeed] = "concurrent.tar"
		got := maps.Clone(rec.Labels)
		if v := got[labelSeedVersion]; !strings.HasPrefix(v, "sha256:") {
			t.Errorf("image %s: %s = %q, want the seed's index digest", img.Name, labelSeedVersion, v)
		}
		delete(got, labelSeedVersion)
		if !maps.Equal(got, want) {
			t.Errorf("image %s: labels %v, want %v", img.Name, rec.Labels, want)
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
	assertNoIngests(t, c, ns)
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
	committed, others := harness.Snapshots(t, c, ns)
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
	pollFor(t, importWait, time.Millisecond, "an ingest of a layer by the plugin", func() error {
		sts, err := c.ContentStore().ListStatuses(nsCtx(ns))
		if err != nil {
			t.Fatalf("ListStatuses: %v", err)
		}
		for _, s := range sts {
			for _, b := range blobs {
				if b.Size > 1<<20 && strings.Contains(s.Ref, b.Digest.Encoded()) && s.Offset > 0 && s.Offset < s.Total {
					t.Logf("the plugin is writing %s: %d of %d bytes", testutil.Short(b.Digest), s.Offset, s.Total)
					return nil
				}
			}
		}
		return errors.New("none under way")
	})
}

// warnLines are the daemon's level=warning and level=error lines but
// lockedRefRE's about one of blobs, and how many of those there were.
func warnLines(log string, blobs []ocispec.Descriptor) (unexpected []string, locked int) {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "level=warning") && !strings.Contains(l, "level=error") {
			continue
		}
		if m := lockedRefRE.FindStringSubmatch(l); m != nil &&
			slices.ContainsFunc(blobs, func(b ocispec.Descriptor) bool { return b.Digest.String() == m[1] }) {
			locked++
			continue
		}
		unexpected = append(unexpected, l)
	}
	return unexpected, locked
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

// TestWarnLines: only a "ref locked" line about a blob of the image is
// excused; any other warning or error line is reported.
func TestWarnLines(t *testing.T) {
	t.Parallel()
	mine, other := digest.FromString("mine"), digest.FromString("other")
	locked := func(d digest.Digest) string {
		return `time="x" level=error msg="(*service).Write failed" error="rpc error: code = Unavailable desc = ref k8s.io/1/layer-` + d.String() + ` locked for 21ms (since x): unavailable"`
	}
	log := strings.Join([]string{
		locked(mine),
		locked(other),
		`time="x" level=warning msg="something else"`,
		`time="x" level=info msg="seed imported"`,
	}, "\n")
	warn, n := warnLines(log, []ocispec.Descriptor{{Digest: mine}})
	if n != 1 || len(warn) != 2 || !strings.Contains(warn[0], other.String()) || !strings.Contains(warn[1], "something else") {
		t.Errorf("warnLines = %q, %d locked; want the other blob's line and the warning, 1 locked", warn, n)
	}
}
