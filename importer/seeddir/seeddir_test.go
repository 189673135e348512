package seeddir

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

func TestIsCandidate(t *testing.T) {
	for name, want := range map[string]bool{
		"app.tar": true, "app.tar.zst": true, "layout": true,
		".app.tar.partial": false, ".hidden": false, "app.tar.tmp": false, "app.tar.part": false, "": false,
	} {
		if got := isCandidate(name); got != want {
			t.Errorf("isCandidate(%q) = %v, want %v", name, got, want)
		}
	}
}

// A file open for writing is busy however old; closed and quiet, it is
// not; a fresh one is busy for the quiet period.
func TestCompletionDetection(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if !beingWritten(p) || !isBusy(p) {
		t.Errorf("a seed open for writing: beingWritten %v, isBusy %v; want both", beingWritten(p), isBusy(p))
	}
	f.Close()
	os.Chtimes(p, old, old)
	if beingWritten(p) || isBusy(p) {
		t.Errorf("a closed, quiet seed: beingWritten %v, isBusy %v; want neither", beingWritten(p), isBusy(p))
	}
	os.Chtimes(p, time.Now(), time.Now())
	if !isBusy(p) {
		t.Error("a seed changed just now is not busy")
	}
	// A file opened for reading only is not being written.
	r, _ := os.Open(p)
	defer r.Close()
	if beingWritten(p) {
		t.Error("a seed open for reading counts as being written")
	}
	if isBusy(filepath.Join(dir, "gone")) {
		t.Error("a missing seed is busy")
	}
}

// A layout directory's fingerprint changes when a file inside it does.
func TestFingerprintOfDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	os.MkdirAll(filepath.Join(dir, "blobs"), 0o755)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), 0o644)
	a, err := fingerprintOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "blobs", "x"), []byte("more"), 0o644)
	b, _ := fingerprintOf(dir)
	if a == b {
		t.Errorf("fingerprint unchanged after a file was added: %+v", a)
	}
}

// The watch's debounce: a seed is ready once quiet for the quiet period
// with its fingerprint kept; a change restarts the wait; a seed still open
// for writing waits; a gone one is dropped.
func TestPendingSeedsDebounce(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) fingerprint {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		fp, err := fingerprintOf(p)
		if err != nil {
			t.Fatal(err)
		}
		return fp
	}
	now := time.Now()
	ps := pendingSeeds{}
	ps.changed("a.tar", write("a.tar", "a"), now)
	ps.changed("b.tar", write("b.tar", "b"), now)
	ps.changed("gone.tar", write("gone.tar", "g"), now)
	os.Remove(filepath.Join(dir, "gone.tar"))

	if got := ps.ready(dir, now.Add(quietPeriod/2)); len(got) != 0 {
		t.Fatalf("ready before the quiet period: %v", got)
	}
	// b changes before its period ends: the event restarts its wait.
	ps.changed("b.tar", write("b.tar", "bb"), now.Add(quietPeriod/2))
	if got := ps.ready(dir, now.Add(quietPeriod)); !slices.Equal(got, []string{"a.tar"}) {
		t.Fatalf("ready after one period: %v, want [a.tar]", got)
	}
	if _, ok := ps["gone.tar"]; ok {
		t.Error("a seed that went away is still pending")
	}
	if got := ps.ready(dir, now.Add(quietPeriod*3/2)); !slices.Equal(got, []string{"b.tar"}) {
		t.Fatalf("ready after b's period: %v, want [b.tar]", got)
	}
	if len(ps) != 0 {
		t.Errorf("left pending: %v", ps)
	}

	// Changed without an event (no newer fingerprint noted): it waits one
	// more period with the fingerprint it has now.
	ps.changed("c.tar", write("c.tar", "c"), now)
	write("c.tar", "cc")
	if got := ps.ready(dir, now.Add(quietPeriod)); len(got) != 0 {
		t.Fatalf("a seed changed since its event is ready: %v", got)
	}
	if got := ps.ready(dir, now.Add(2*quietPeriod)); !slices.Equal(got, []string{"c.tar"}) {
		t.Fatalf("c.tar after a second quiet period: %v", got)
	}

	// Open for writing: never ready while open.
	f, err := os.Create(filepath.Join(dir, "d.tar"))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := fingerprintOf(f.Name())
	ps.changed("d.tar", fp, now)
	if got := ps.ready(dir, now.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("a seed open for writing is ready: %v", got)
	}
	f.Close()
	if got := ps.ready(dir, now.Add(2*time.Hour)); !slices.Equal(got, []string{"d.tar"}) {
		t.Fatalf("d.tar once closed: %v", got)
	}

	// Seeds found busy at a scan wait too (no fingerprint known: one
	// period to learn it, one to see it kept).
	ps.wait([]string{"a.tar"}, now)
	if got := ps.ready(dir, now.Add(quietPeriod)); len(got) != 0 {
		t.Fatalf("a busy seed ready after one period: %v", got)
	}
	if got := ps.ready(dir, now.Add(2*quietPeriod)); !slices.Equal(got, []string{"a.tar"}) {
		t.Fatalf("a busy seed after two periods: %v", got)
	}
}

// The state survives a reload, forgets and prunes, and a damaged file only
// means starting afresh.
func TestState(t *testing.T) {
	dir := t.TempDir()
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprint{Size: 10, MTime: time.Unix(1700000000, 0).UTC(), Inode: 42}
	for _, n := range []string{"a.tar", "b.tar", "c.tar"} {
		if err := st.put(n, record{Fingerprint: fp, Images: []string{"img/" + n}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.forget("b.tar"); err != nil {
		t.Fatal(err)
	}
	if gone, err := st.prune([]string{"a.tar", "z.tar"}); err != nil || !slices.Equal(gone, []string{"c.tar"}) {
		t.Fatalf("prune: %v, %v; want [c.tar] gone", gone, err)
	}
	again, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := again.get("a.tar")
	if !ok || r.Fingerprint != fp || !slices.Equal(r.Images, []string{"img/a.tar"}) {
		t.Errorf("a.tar after reload: %+v, %v", r, ok)
	}
	for _, n := range []string{"b.tar", "c.tar"} {
		if _, ok := again.get(n); ok {
			t.Errorf("%s still recorded after forget/prune", n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile+".tmp")); err == nil {
		t.Error("a temporary state file is left")
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600)
	damaged, err := loadState(dir)
	if err != nil || len(damaged.Seeds) != 0 {
		t.Errorf("damaged state: %v, %v; want a fresh one", damaged.Seeds, err)
	}
}

// A layout directory waits for dirQuietPeriod with its tree unchanged: a
// copy that pauses between index.json and the blobs is not read half-way.
func TestPendingDirectoryWaitsLonger(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(layout, "index.json"), []byte("{}"), 0o644)
	fp, _ := fingerprintOf(layout)
	now := time.Now()
	ps := pendingSeeds{}
	ps.changed("layout", fp, now)
	if got := ps.ready(dir, now.Add(quietPeriod)); len(got) != 0 {
		t.Fatalf("a directory is ready after a file's quiet period: %v", got)
	}
	// The blobs arrive after a pause longer than a file's quiet period.
	os.WriteFile(filepath.Join(layout, "blobs", "sha256", "x"), []byte("blob"), 0o644)
	if got := ps.ready(dir, now.Add(dirQuietPeriod)); len(got) != 0 {
		t.Fatalf("a directory whose tree changed is ready: %v", got)
	}
	if got := ps.ready(dir, now.Add(dirQuietPeriod+dirQuietPeriod/2)); len(got) != 0 {
		t.Fatalf("ready before a whole quiet period since the change: %v", got)
	}
	if got := ps.ready(dir, now.Add(3*dirQuietPeriod)); !slices.Equal(got, []string{"layout"}) {
		t.Fatalf("the directory once quiet: %v", got)
	}
	if quietFor(layout) != dirQuietPeriod || quietFor(filepath.Join(layout, "index.json")) != quietPeriod {
		t.Error("quietFor")
	}
}

// A failure that was the node's (the import's lease deleted under it) is
// retried at the next rescan; a seed's own failure waits for a change.
func TestRetryAfterLostLease(t *testing.T) {
	dir := t.TempDir()
	st, _ := loadState(dir)
	fp := fingerprint{Size: 1}
	st.put("lost.tar", record{Fingerprint: fp, Error: "lease gone", Retry: true})
	st.put("bad.tar", record{Fingerprint: fp, Error: "digest mismatch"})
	again, _ := loadState(dir)
	if r, _ := again.get("lost.tar"); !r.Retry {
		t.Error("Retry not kept across a restart")
	}
	if r, _ := again.get("bad.tar"); r.Retry {
		t.Error("a seed's own failure marked for retry")
	}
}

// A split seed is watched by its first part: later parts name it, and a
// set whose last part is as large as its first may grow, so waits longer.
func TestSplitSeedQuiet(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.tar.001", 100)
	write("a.tar.002", 100)
	if got, ok := firstPartOf(dir, "a.tar.002"); !ok || got != "a.tar.001" {
		t.Errorf("firstPartOf(a.tar.002) = %q, %v", got, ok)
	}
	for _, n := range []string{"a.tar.001", "a.tar", "b.tar.002", ".a.tar.002"} {
		if got, ok := firstPartOf(dir, n); ok {
			t.Errorf("firstPartOf(%s) = %q", n, got)
		}
	}
	first := filepath.Join(dir, "a.tar.001")
	if q := quietFor(first); q != splitQuietPeriod {
		t.Errorf("a set whose last part is full-size: quiet %v, want %v", q, splitQuietPeriod)
	}
	write("a.tar.003", 10)
	if q := quietFor(first); q != quietPeriod {
		t.Errorf("a set ending in a shorter part: quiet %v, want %v", q, quietPeriod)
	}
	write("lone.tar.000", 100)
	if q := quietFor(filepath.Join(dir, "lone.tar.000")); q != splitQuietPeriod {
		t.Errorf("a first part alone: quiet %v, want %v", q, splitQuietPeriod)
	}
	if q := quietFor(filepath.Join(dir, "a.tar.003")); q != quietPeriod {
		t.Errorf("a plain name: quiet %v", q)
	}
}

// An image list: references one per line, comments and blank lines
// skipped, a bad line named; its version is the digest of its bytes.
func TestReadImageList(t *testing.T) {
	p := filepath.Join(t.TempDir(), "images.txt")
	body := "# k3s-style list\n\ndocker.io/library/alpine:3.20\n  busybox  \nnot a reference\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	refs, version, bad, err := readImageList(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io/library/alpine:3.20", "docker.io/library/busybox:latest"}; !slices.Equal(refs, want) {
		t.Errorf("refs %v, want %v", refs, want)
	}
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "line 5") {
		t.Errorf("bad lines %v; want line 5", bad)
	}
	if version != digest.FromString(body) {
		t.Errorf("version %s", version)
	}
	if os.WriteFile(p, make([]byte, maxListBytes+1), 0o644); true {
		if _, _, _, err := readImageList(p); err == nil {
			t.Error("a list beyond the cap is read")
		}
	}
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 9: 10 * time.Minute} {
		if got := retryAfter(n); got != want {
			t.Errorf("retryAfter(%d) = %v, want %v", n, got, want)
		}
	}
}

// A zarf split package is watched by its .part000 header, and waits (the
// longer quiet period) until every part it names is there in full.
func TestZarfSplitQuiet(t *testing.T) {
	dir := t.TempDir()
	hdr := filepath.Join(dir, "pkg.tar.zst.part000")
	os.WriteFile(hdr, []byte(`{"Sha256Sum":"`+strings.Repeat("0", 64)+`","Bytes":150,"Count":2}`), 0o644)
	os.WriteFile(filepath.Join(dir, "pkg.tar.zst.part001"), make([]byte, 100), 0o644)
	if q := quietFor(hdr); q != splitQuietPeriod {
		t.Errorf("a zarf package missing a part: quiet %v", q)
	}
	if got, ok := firstPartOf(dir, "pkg.tar.zst.part001"); !ok || got != "pkg.tar.zst.part000" {
		t.Errorf("firstPartOf(part001) = %q, %v", got, ok)
	}
	if isCandidate("pkg.tar.zst.part001") || !isCandidate("pkg.tar.zst.part000") {
		t.Error("a zarf data part counts as a seed, or its header does not")
	}
	os.WriteFile(filepath.Join(dir, "pkg.tar.zst.part002"), make([]byte, 49), 0o644)
	if q := quietFor(hdr); q != splitQuietPeriod {
		t.Errorf("a zarf package a byte short: quiet %v", q)
	}
	os.WriteFile(filepath.Join(dir, "pkg.tar.zst.part002"), make([]byte, 50), 0o644)
	if q := quietFor(hdr); q != quietPeriod {
		t.Errorf("a complete zarf package: quiet %v", q)
	}
	if parts := partsOf(hdr); len(parts) != 3 {
		t.Errorf("partsOf: %v; want the header and both parts", parts)
	}
}

func TestImportOrderSmallestFirstListsLast(t *testing.T) {
	size := map[string]int64{"big.tar": 900, "small.tar": 10, "mid.tar": 50, "a.txt": 1, "b-same.tar": 50, "dir": 4096}
	names := []string{"a.txt", "big.tar", "dir", "mid.tar", "small.tar", "b-same.tar"}
	importOrder(names, func(n string) int64 { return size[n] })
	want := []string{"small.tar", "b-same.tar", "mid.tar", "big.tar", "dir", "a.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}

// A seed file renamed into place with an old mtime (cp -p, rsync) has been
// quiet since then: it is ready at its event, not a quiet period later; a
// layout directory with old mtimes still waits its own period.
func TestPendingRenamedIntoPlaceReadyAtOnce(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Minute)
	file := filepath.Join(dir, "moved.tar")
	if err := os.WriteFile(file, []byte("seed"), 0o644); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if err := os.MkdirAll(filepath.Join(layout, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(layout, "blobs"), layout} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	ps := pendingSeeds{}
	for _, n := range []string{"moved.tar", "layout"} {
		fp, err := fingerprintOf(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		ps.changed(n, fp, now)
	}
	if got := ps.ready(dir, now); !slices.Equal(got, []string{"moved.tar"}) {
		t.Fatalf("ready at the event: %v, want [moved.tar]", got)
	}
	if got := ps.ready(dir, now.Add(quietPeriod)); len(got) != 0 {
		t.Fatalf("a layout directory with old mtimes is ready after a file's period: %v", got)
	}
	if got := ps.ready(dir, now.Add(dirQuietPeriod)); !slices.Equal(got, []string{"layout"}) {
		t.Fatalf("layout after its period: %v", got)
	}
}
