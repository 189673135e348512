package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestBootSeedStillBeingWritten: a seed that is still open for writing when
// the service starts must not be read half-way either: the boot pass (and
// the rescan) leave it to the watcher until its writer closes it.
func TestBootSeedStillBeingWritten(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	img := uniqueImage(t, "docker.io/ctrseed-test/boot-partial:1", false, testseed.Gzip)
	data := ociSeed(t, img, testseed.Uncompressed)
	const name = "copying.tar"
	f, err := os.OpenFile(filepath.Join(seeds, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}

	pd := startPlugin(t, seeds, harness.DaemonOptions{DisableCRI: true})
	d := pd.d
	ev := pd.watch(t)
	// The boot pass ran while containerd started, before anyone could
	// subscribe: settle says when it (and the watch's first pass) is over;
	// what it did is in the log and the state.
	ev.settle(t)
	if el := errorLines(d.Log(), name); len(el) > 0 {
		t.Errorf("seed still open for writing at start was read half-way:\n%s", strings.Join(el, "\n"))
	}
	if n := imported(d.Log(), name); n != 0 {
		t.Errorf("seed still open for writing at start imported (%d lines)", n)
	}
	// No state.json at all (nothing imported yet) is no record either.
	if _, err := os.Stat(filepath.Join(pd.pluginRoot, "state.json")); err == nil {
		if r, ok := readState(t, pd.pluginRoot).Seeds[name]; ok {
			t.Errorf("seed still open for writing at start has a record: %+v", r)
		}
	}
	for _, e := range ev.all(t) {
		if e.Seed == name && (e.Kind == seeddir.Imported || e.Kind == seeddir.Failed) {
			t.Errorf("seed still open for writing: %s %s (%s)", e.Kind, e.Seed, e.Error)
		}
	}
	if _, err := f.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ev.waitCount(t, 1, seeddir.Imported, name)
	if err := checkImage(pd.c, "k8s.io", img.Name, nil); err != nil {
		t.Error(err)
	}
	ev.settle(t) // a second import would have come by now
	if n := len(ev.of(t, seeddir.Imported, name)); n != 1 {
		t.Errorf("%d imported events for %s, want 1", n, name)
	}
	if n := imported(d.Log(), name); n != 1 {
		t.Errorf("%d \"seed imported\" lines for %s, want 1", n, name)
	}
	if f := ev.of(t, seeddir.Failed, name); len(f) > 0 {
		t.Errorf("failed events for %s: %+v", name, f)
	}
}
