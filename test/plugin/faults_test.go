package plugin_test

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Fault tests of the seeds-directory service inside containerd-seed: seeds
// deleted or replaced while they are being imported, the seeds dir going
// away and coming back, and a flood of seeds at once. Each test runs its
// own daemon, from the repo's config.toml, with image content of its own.

// bigLayerSize is the size of the pseudo-random file in a big seed's only
// layer: large enough that its import (write into the content store, apply
// into overlayfs) takes long enough to be interrupted on purpose.
const bigLayerSize = 160 << 20

// startFaultTest makes t a parallel test with a containerd-seed of its own
// on an empty seeds dir; how long the test took is logged at its end.
func startFaultTest(t *testing.T) *pluginDaemon {
	t.Helper()
	t.Parallel()
	start := time.Now()
	t.Cleanup(func() { t.Logf("total %v", time.Since(start).Round(time.Millisecond)) })
	return startPlugin(t, newSeedsDir(t), harness.DaemonOptions{})
}

// --- big seeds -----------------------------------------------------------

// bigSeed is an OCI image-layout tar whose image has one uncompressed layer
// holding size bytes of ChaCha8 output keyed by key: deterministic, unique
// to the key, incompressible, and never held in memory.
type bigSeed struct {
	name  string // image name
	key   [32]byte
	size  int64
	layer ocispec.Descriptor
}

func newBigSeed(t *testing.T, name string, size int64) *bigSeed {
	t.Helper()
	b := &bigSeed{name: name, size: size}
	b.key = sha256.Sum256([]byte(t.Name() + " " + name))
	// First pass: the layer's digest, which its tar entry is named by.
	h := sha256.New()
	n, err := b.writeLayer(h)
	if err != nil {
		t.Fatal(err)
	}
	b.layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.NewDigest(digest.SHA256, h), Size: n}
	return b
}

// writeLayer writes the layer tar (the same bytes every time) and returns
// its length.
func (b *bigSeed) writeLayer(w io.Writer) (int64, error) {
	var n testutil.ByteCount
	tw := tar.NewWriter(io.MultiWriter(w, &n))
	epoch := time.Unix(0, 0)
	tag := []byte(b.name + "\n")
	for _, f := range []struct {
		name string
		size int64
		r    io.Reader
	}{
		{"etc/test-name", int64(len(tag)), strings.NewReader(string(tag))},
		{"big.bin", b.size, rand.NewChaCha8(b.key)},
	} {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: f.size, ModTime: epoch, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, err
		}
		if _, err := io.CopyN(tw, f.r, f.size); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// write streams the seed into path: under a hidden name in the same
// directory first, then renamed into place, as seeds are meant to arrive.
func (b *bigSeed) write(t *testing.T, path string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.writeTar(f); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (b *bigSeed) writeTar(f io.Writer) error {
	p := platforms.DefaultSpec()
	cfg, err := json.Marshal(ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{b.layer.Digest}},
	})
	if err != nil {
		return err
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	mf, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{b.layer},
	})
	if err != nil {
		return err
	}
	mfDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mf), Size: int64(len(mf)),
		Annotations: map[string]string{testseed.AnnotationImageName: b.name, testseed.AnnotationRefName: b.name[strings.LastIndex(b.name, ":")+1:]}}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mfDesc}})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}

	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatUSTAR})
	}
	file := func(name string, size int64, fill func(io.Writer) error) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o444, Size: size, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
		return fill(tw)
	}
	bytesOf := func(p []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(p); return err }
	}
	blob := func(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, e := range []struct {
		d    digest.Digest
		size int64
		fill func(io.Writer) error
	}{
		{cfgDesc.Digest, cfgDesc.Size, bytesOf(cfg)},
		{b.layer.Digest, b.layer.Size, func(w io.Writer) error { _, err := b.writeLayer(w); return err }},
		{mfDesc.Digest, mfDesc.Size, bytesOf(mf)},
	} {
		if err := file(blob(e.d), e.size, e.fill); err != nil {
			return err
		}
	}
	if err := file("index.json", int64(len(idx)), bytesOf(idx)); err != nil {
		return err
	}
	if err := file("oci-layout", int64(len(layout)), bytesOf(layout)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// waitIngest waits until the daemon is writing layer into its content
// store in ns (the import is under way, reading the seed) and returns the
// ingest's progress then.
func waitIngest(t *testing.T, c *client.Client, ns string, layer ocispec.Descriptor, timeout time.Duration) (offset, total int64) {
	t.Helper()
	pollFor(t, timeout, 5*time.Millisecond, "an ingest of "+layer.Digest.String()+" in "+ns, func() error {
		sts, err := c.ContentStore().ListStatuses(nsCtx(ns))
		if err != nil {
			t.Fatalf("ListStatuses: %v", err)
		}
		for _, s := range sts {
			if s.Expected == layer.Digest || strings.Contains(s.Ref, layer.Digest.Encoded()) {
				offset, total = s.Offset, s.Total
				return nil
			}
		}
		if _, err := c.ContentStore().Info(nsCtx(ns), layer.Digest); err == nil {
			t.Fatalf("layer %s already committed before its ingest was seen: the import is too quick to interrupt (make bigLayerSize larger)", layer.Digest)
		}
		return errors.New("none seen")
	})
	return offset, total
}

// --- probing -------------------------------------------------------------

// versionProbe calls Version every 200 ms until stopped and records the
// slowest answer and any failure.
type versionProbe struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	calls int
	max   time.Duration
	errs  []string
}

func probeVersion(c *client.Client, ns string) *versionProbe {
	p := &versionProbe{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(nsCtx(ns), 15*time.Second)
			start := time.Now()
			_, err := c.Version(ctx)
			took := time.Since(start)
			cancel()
			p.mu.Lock()
			p.calls++
			p.max = max(p.max, took)
			if err != nil {
				p.errs = append(p.errs, fmt.Sprintf("%s: %v", start.Format("15:04:05.000"), err))
			}
			p.mu.Unlock()
			select {
			case <-p.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// stop ends the probe and fails t if the daemon ever failed to answer, or
// took limit or longer.
func (p *versionProbe) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("Version probe: %d calls, slowest %v", p.calls, p.max.Round(time.Microsecond))
	if len(p.errs) > 0 {
		t.Errorf("Version failed %d times:\n%s", len(p.errs), strings.Join(p.errs, "\n"))
	}
	if p.max >= limit {
		t.Errorf("Version took %v at worst, want < %v", p.max, limit)
	}
}

// --- state ---------------------------------------------------------------

type stateFingerprint struct {
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	Inode uint64    `json:"inode"`
}

// recordedFingerprint is the fingerprint state.json holds for seed.
func recordedFingerprint(t *testing.T, dir, seed string) (stateFingerprint, bool) {
	t.Helper()
	var s struct {
		Seeds map[string]struct {
			Fingerprint stateFingerprint `json:"fingerprint"`
		} `json:"seeds"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("state: %v\n%s", err, b)
	}
	r, ok := s.Seeds[seed]
	return r.Fingerprint, ok
}

func fileFingerprint(t *testing.T, path string) stateFingerprint {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return stateFingerprint{Size: fi.Size(), MTime: fi.ModTime().UTC(), Inode: fi.Sys().(*syscall.Stat_t).Ino}
}

func (f stateFingerprint) equal(o stateFingerprint) bool {
	return f.Size == o.Size && f.Inode == o.Inode && f.MTime.Equal(o.MTime)
}

// --- checks --------------------------------------------------------------

// attemptDone reports whether the service has finished an attempt at seed
// since n earlier "seed imported" lines and e earlier error lines.
func attemptDone(log, seed string, n, e int) bool {
	return imported(log, seed) > n || len(errorLines(log, seed)) > e
}

// assertWholeOrAbsent: name is either not an image at all, or a whole one
// (labelled, unpacked, every blob in the store); never a record without
// its content.
func assertWholeOrAbsent(t *testing.T, fd *pluginDaemon, name string, layer *ocispec.Descriptor) (present bool) {
	t.Helper()
	_, err := fd.c.ImageService().Get(nsCtx(fd.ns), name)
	if errdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("image %s: %v", name, err)
	}
	if err := checkImage(fd.c, fd.ns, name, fd.labels); err != nil {
		t.Errorf("half image: %v", err)
	}
	if layer != nil {
		if info, err := fd.c.ContentStore().Info(nsCtx(fd.ns), layer.Digest); err != nil {
			t.Errorf("image %s exists but its layer %s is not in the store: %v", name, layer.Digest, err)
		} else if info.Size != layer.Size {
			t.Errorf("image %s: layer %s has %d bytes in the store, want %d", name, layer.Digest, info.Size, layer.Size)
		}
	}
	return true
}

// --- the tests -----------------------------------------------------------

// TestFaultDeleteWhileImporting deletes a big seed once its layer is being
// written into the content store. The seed's file stays readable through
// the open descriptor, so either outcome is allowed: the image lands whole,
// or not at all. What must hold: the daemon keeps serving, no half image,
// no lease or ingest left once the attempt is over, the service forgets
// the deleted seed, and adding it back imports it again.
func TestFaultDeleteWhileImporting(t *testing.T) {
	fd := startFaultTest(t)
	fd.probeUntilEnd(t)
	start := time.Now()

	const name = "big-delete.tar"
	big := newBigSeed(t, "docker.io/ctrseed-test/fault-delete:1", bigLayerSize)
	path := filepath.Join(fd.seeds, name)
	big.write(t, path)
	// A second link outside the seeds dir, so the same seed (same inode,
	// size and mtime) can be added back later.
	aside := filepath.Join(t.TempDir(), name)
	if err := os.Link(path, aside); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed of %d MiB written in %v", big.layer.Size>>20, time.Since(start).Round(time.Millisecond))

	off, total := waitIngest(t, fd.c, fd.ns, big.layer, 15*time.Second)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	t.Logf("seed deleted with its layer ingest at %d of %d bytes", off, total)

	waitFor(t, importWait, "import attempt of the deleted seed over", func() error {
		if !attemptDone(fd.d.Log(), name, 0, 0) {
			return errors.New("neither \"seed imported\" nor an error line for " + name)
		}
		return nil
	})
	t.Logf("attempt over %v after the delete", time.Since(deleted).Round(time.Millisecond))
	log := fd.d.Log()
	n1 := imported(log, name)
	t.Logf("outcome: %d \"seed imported\" lines, error lines:\n%s", n1, strings.Join(errorLines(log, name), "\n"))
	fd.assertServing(t)
	fd.assertSettled(t)
	present := assertWholeOrAbsent(t, fd, big.name, &big.layer)
	t.Logf("image after the interrupted attempt: present=%v", present)
	if n1 > 0 && !present {
		t.Errorf("seed logged as imported but image %s is absent", big.name)
	}

	// The service must forget the seed once it is gone...
	waitFor(t, 10*time.Second, "deleted seed forgotten", func() error {
		if _, ok := recordedFingerprint(t, fd.pluginRoot, name); ok {
			return fmt.Errorf("state.json still lists %s", name)
		}
		return nil
	})
	// ...so that adding it back, unchanged, imports it again.
	if err := os.Rename(aside, path); err != nil {
		t.Fatal(err)
	}
	readded := time.Now()
	waitFor(t, importWait, "re-added seed imported", func() error {
		if imported(fd.d.Log(), name) <= n1 {
			return fmt.Errorf("no new \"seed imported\" line for %s", name)
		}
		return checkImage(fd.c, fd.ns, big.name, fd.labels)
	})
	t.Logf("re-added seed imported in %v", time.Since(readded).Round(time.Millisecond))
	assertWholeOrAbsent(t, fd, big.name, &big.layer)
	assertState(t, fd.pluginRoot, map[string][]string{name: {big.name}})
	if fp, _ := recordedFingerprint(t, fd.pluginRoot, name); !fp.equal(fileFingerprint(t, path)) {
		t.Errorf("state.json fingerprint %+v, file is %+v", fp, fileFingerprint(t, path))
	}
	fd.assertSettled(t)
}

// TestFaultReplaceWhileImporting renames a different (small) seed over a
// big one while the big one is being imported. The old version may land or
// not (never half); the new version must land, and state.json must record
// the new version's fingerprint.
func TestFaultReplaceWhileImporting(t *testing.T) {
	fd := startFaultTest(t)
	fd.probeUntilEnd(t)

	const name = "replaced.tar"
	path := filepath.Join(fd.seeds, name)
	big := newBigSeed(t, "docker.io/ctrseed-test/fault-replace:1", bigLayerSize)
	small := uniqueImage(t, "docker.io/ctrseed-test/fault-replace:2", false, testseed.Gzip)
	smallSeed := ociSeed(t, small, testseed.Uncompressed)
	ev := fd.watch(t)
	big.write(t, path)

	off, total := waitIngest(t, fd.c, fd.ns, big.layer, 15*time.Second)
	dropIn(t, fd.seeds, name, smallSeed)
	replaced := time.Now()
	t.Logf("seed replaced with its old version's layer ingest at %d of %d bytes", off, total)

	importedNew := func(evs []seeddir.Event) (n int) {
		for _, e := range eventsOf(evs, seeddir.Imported, name) {
			if slices.Contains(e.Images, small.Name) {
				n++
			}
		}
		return n
	}
	ev.wait(t, importWait, "new version imported", func(evs []seeddir.Event) error {
		if importedNew(evs) == 0 {
			return fmt.Errorf("no imported event for %s naming %s:\n%s", name, small.Name, describe(evs))
		}
		return nil
	})
	if err := checkImage(fd.c, fd.ns, small.Name, fd.labels); err != nil {
		t.Fatalf("new version: %v", err)
	}
	t.Logf("new version imported %v after the replace", time.Since(replaced).Round(time.Millisecond))
	ev.settle(t) // a spurious further import would have come by now
	if n := importedNew(ev.all(t)); n != 1 {
		t.Errorf("%d imported events for %s naming %s, want 1", n, name, small.Name)
	}
	if f := ev.of(t, seeddir.Failed, name); len(f) > 0 {
		t.Errorf("failed events for %s: %+v", name, f)
	}

	log := fd.d.Log()
	lines := seedLines(log, "info", "seed imported", name)
	t.Logf("\"seed imported\" lines for %s:\n%s", name, strings.Join(lines, "\n"))
	if el := errorLines(log, name); len(el) > 0 {
		// The old version is read through its open descriptor, which a
		// rename does not disturb: no error is expected.
		t.Errorf("error lines for %s:\n%s", name, strings.Join(el, "\n"))
	}
	var newLines int
	for _, l := range lines {
		if strings.Contains(l, small.Name) {
			newLines++
		}
	}
	if newLines != 1 {
		t.Errorf("new version imported %d times, want 1", newLines)
	}
	fd.assertServing(t)
	oldPresent := assertWholeOrAbsent(t, fd, big.name, &big.layer)
	t.Logf("old version's image present=%v", oldPresent)
	if err := checkImage(fd.c, fd.ns, small.Name, fd.labels); err != nil {
		t.Error(err)
	}
	assertState(t, fd.pluginRoot, map[string][]string{name: {small.Name}})
	fp, ok := recordedFingerprint(t, fd.pluginRoot, name)
	if want := fileFingerprint(t, path); !ok || !fp.equal(want) {
		t.Errorf("state.json fingerprint of %s = %+v (listed %v), want the new version's %+v", name, fp, ok, want)
	}
	fd.assertSettled(t)
	if err := criHas(fd.d.Address, []string{small.Name}); err != nil {
		t.Error(err)
	}
}

// TestFaultSeedsDirDisappears removes the seeds dir (rm -rf) and creates it
// again, twice: once after the service has noticed, once at once. Each
// time a seed dropped into the new dir must be imported within 10 s (the
// service polls for a missing dir every 2 s), and so must a seed that was
// in the old dir and is added back.
func TestFaultSeedsDirDisappears(t *testing.T) {
	fd := startFaultTest(t)
	fd.probeUntilEnd(t)

	ev := fd.watch(t)
	const gone = "seeds dir went away"
	goneLines := func() int { return strings.Count(fd.d.Log(), gone) }
	first := uniqueImage(t, "docker.io/ctrseed-test/fault-dir-first:1", false, testseed.Gzip)
	firstSeed := ociSeed(t, first, testseed.Gzip)
	const firstName = "first.tar.gz"
	dropIn(t, fd.seeds, firstName, firstSeed)
	ev.waitCount(t, 1, seeddir.Imported, firstName)
	if err := checkImage(fd.c, fd.ns, first.Name, fd.labels); err != nil {
		t.Fatal(err)
	}

	for i, quick := range []bool{false, true} {
		round := fmt.Sprintf("round %d (quick=%v)", i+1, quick)
		g0, n0 := goneLines(), len(ev.of(t, seeddir.Imported, firstName))
		if err := os.RemoveAll(fd.seeds); err != nil {
			t.Fatal(err)
		}
		removed := time.Now()
		if !quick {
			waitFor(t, 5*time.Second, round+": service notices the dir is gone", func() error {
				if goneLines() == g0 {
					return fmt.Errorf("no %q line", gone)
				}
				return nil
			})
			t.Logf("%s: dir removal noticed in %v", round, time.Since(removed).Round(time.Millisecond))
		}
		if err := os.Mkdir(fd.seeds, 0o755); err != nil {
			t.Fatal(err)
		}
		img := uniqueImage(t, fmt.Sprintf("docker.io/ctrseed-test/fault-dir-new:%d", i+1), false, testseed.Zstd)
		newName := fmt.Sprintf("new-%d.tar.zst", i+1)
		dropIn(t, fd.seeds, newName, ociSeed(t, img, testseed.Zstd))
		dropIn(t, fd.seeds, firstName, firstSeed) // the old dir's seed, back (a new file)
		back := time.Now()
		ev.wait(t, 10*time.Second, round+": seeds in the new dir imported", func(evs []seeddir.Event) error {
			if len(eventsOf(evs, seeddir.Imported, newName)) == 0 {
				return fmt.Errorf("no imported event for %s", newName)
			}
			if len(eventsOf(evs, seeddir.Imported, firstName)) <= n0 {
				return fmt.Errorf("no new imported event for re-added %s", firstName)
			}
			return nil
		})
		took := time.Since(back)
		if err := checkImages(fd.c, fd.ns, []string{img.Name, first.Name}, fd.labels); err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		t.Logf("%s: both seeds imported %v after the dir came back", round, took.Round(time.Millisecond))
		if n := goneLines() - g0; n != 1 {
			t.Errorf("%s: %d %q lines, want 1", round, n, gone)
		}
		assertState(t, fd.pluginRoot, map[string][]string{newName: {img.Name}, firstName: {first.Name}})
	}
	ev.settle(t) // a further import would have come by now
	for _, s := range []string{"new-1.tar.zst", "new-2.tar.zst"} {
		if n := len(ev.of(t, seeddir.Imported, s)); n != 1 {
			t.Errorf("%s: %d imported events, want 1", s, n)
		}
	}
	if n := len(ev.of(t, seeddir.Imported, firstName)); n != 3 {
		t.Errorf("%s: %d imported events, want 3", firstName, n)
	}
	for _, s := range []string{firstName, "new-1.tar.zst", "new-2.tar.zst"} {
		if f := ev.of(t, seeddir.Failed, s); len(f) > 0 {
			t.Errorf("failed events for %s: %+v", s, f)
		}
	}
	log := fd.d.Log()
	for _, s := range []string{"new-1.tar.zst", "new-2.tar.zst"} {
		if n := imported(log, s); n != 1 {
			t.Errorf("%s imported %d times, want 1", s, n)
		}
	}
	if n := imported(log, firstName); n != 3 {
		t.Errorf("%s imported %d times, want 3 (at first and after each return)", firstName, n)
	}
	for _, s := range []string{firstName, "new-1.tar.zst", "new-2.tar.zst"} {
		if el := errorLines(log, s); len(el) > 0 {
			t.Errorf("error lines for %s:\n%s", s, strings.Join(el, "\n"))
		}
	}
	// The first round's new seed went with the dir: the state must not
	// keep it.
	if _, ok := recordedFingerprint(t, fd.pluginRoot, "new-1.tar.zst"); ok {
		t.Errorf("state.json still lists new-1.tar.zst, removed with the dir")
	}
	assertNoLeases(t, fd.c, fd.ns)
	fd.assertServing(t)
}

// TestFaultFlood drops 50 small seeds at once (each written under a hidden
// name, then all renamed into place): every image must land within 60 s,
// each seed be imported exactly once, and the daemon answer Version within
// 5 s throughout.
func TestFaultFlood(t *testing.T) {
	const n = 50
	fd := startFaultTest(t)

	names := make([]string, n)
	imgs := make([]string, n)
	data := make([][]byte, n)
	for i := range n {
		img := uniqueImage(t, fmt.Sprintf("docker.io/ctrseed-test/fault-flood-%02d:1", i), i%2 == 1, testseed.Gzip)
		names[i], imgs[i] = fmt.Sprintf("flood-%02d.tar", i), img.Name
		if i%2 == 1 {
			data[i] = dockerSeed(t, fmt.Sprintf("ctrseed-test/fault-flood-%02d:1", i), img, testseed.Uncompressed)
		} else {
			data[i] = ociSeed(t, img, testseed.Uncompressed)
		}
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(fd.seeds, "."+names[i]+".partial"), data[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd.probeUntilEnd(t)
	ev := fd.watch(t)
	dropped := time.Now()
	for i := range n {
		if err := os.Rename(filepath.Join(fd.seeds, "."+names[i]+".partial"), filepath.Join(fd.seeds, names[i])); err != nil {
			t.Fatal(err)
		}
	}
	ev.wait(t, 60*time.Second, "every flooded seed imported", func(evs []seeddir.Event) error {
		var missing []string
		for _, s := range names {
			if len(eventsOf(evs, seeddir.Imported, s)) == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d seeds not imported yet: %v", len(missing), missing)
		}
		return nil
	})
	t.Logf("%d seeds imported in %v", n, time.Since(dropped).Round(time.Millisecond))
	if err := checkImages(fd.c, fd.ns, imgs, fd.labels); err != nil {
		t.Error(err)
	}
	ev.settle(t) // a second import, which must not come, would have by now
	evs := ev.all(t)
	for _, s := range names {
		if n := len(eventsOf(evs, seeddir.Imported, s)); n != 1 {
			t.Errorf("%s: %d imported events, want exactly 1", s, n)
		}
		if f := eventsOf(evs, seeddir.Failed, s); len(f) > 0 {
			t.Errorf("failed events for %s: %+v", s, f)
		}
		if e := eventsOf(evs, seeddir.Seen, "."+s+".partial"); len(e) > 0 {
			t.Errorf("the hidden name of %s was seen: %+v", s, e)
		}
	}
	log := fd.d.Log()
	for _, s := range names {
		if c := imported(log, s); c != 1 {
			t.Errorf("%s imported %d times, want exactly 1:\n%s", s, c, strings.Join(seedLines(log, "", "seed imported", s), "\n"))
		}
		if el := errorLines(log, s); len(el) > 0 {
			t.Errorf("error lines for %s:\n%s", s, strings.Join(el, "\n"))
		}
		if strings.Contains(log, "seed=."+s) || strings.Contains(log, `seed=".`+s) {
			t.Errorf("the hidden name of %s was looked at", s)
		}
	}
	want := map[string][]string{}
	for i := range n {
		want[names[i]] = []string{imgs[i]}
	}
	assertState(t, fd.pluginRoot, want)
	assertNoLeases(t, fd.c, fd.ns)
	got := imageNames(t, fd.c, fd.ns)
	for _, img := range imgs {
		if !slices.Contains(got, img) {
			t.Errorf("image %s missing from the list", img)
		}
	}
	if err := criHas(fd.d.Address, imgs); err != nil {
		t.Error(err)
	}
}
