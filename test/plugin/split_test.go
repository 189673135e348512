package plugin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestPluginSplitSeedArrivingInParts: the parts of a split seed dropped in
// one by one, with pauses longer than the quiet period, are one seed,
// imported once when its last (shorter) part is there, with no error line
// while parts are missing. A set that stays incomplete is refused in one
// line, once its quiet period for sets that may grow is over.
func TestPluginSplitSeedArrivingInParts(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	pd := startPlugin(t, seeds, harness.DaemonOptions{DisableCRI: true})
	ev := pd.watch(t)

	img := uniqueImage(t, "docker.io/ctrseed-test/split-parts:1", false, testseed.Gzip)
	data := ociSeed(t, img, testseed.Uncompressed)
	part := len(data)/3 + 1 // three parts, the last one shorter
	const name = "app.tar.001"
	for i, p := range [][]byte{data[:part], data[part : 2*part]} {
		dropIn(t, seeds, fmt.Sprintf("app.tar.%03d", i+1), p)
		// A pause longer than the quiet period, over when the watch has
		// judged a canary dropped after the part.
		ev.settle(t)
		if el := errorLines(pd.d.Log(), name); len(el) > 0 {
			t.Fatalf("error lines with %d of 3 parts there:\n%s", i+1, strings.Join(el, "\n"))
		}
		if n := imported(pd.d.Log(), name); n != 0 {
			t.Fatalf("imported with %d of 3 parts there", i+1)
		}
		for _, k := range []seeddir.Kind{seeddir.Imported, seeddir.Failed} {
			if e := ev.of(t, k, name); len(e) > 0 {
				t.Fatalf("with %d of 3 parts there: %+v", i+1, e)
			}
		}
	}
	dropIn(t, seeds, "app.tar.003", data[2*part:])
	ev.waitCount(t, 1, seeddir.Imported, name)
	if err := checkImage(pd.c, pd.ns, img.Name, pd.labels); err != nil {
		t.Fatalf("the split seed once whole: %v", err)
	}
	ev.settle(t) // a second import, or an error, would have come by now
	if n, el := imported(pd.d.Log(), name), errorLines(pd.d.Log(), name); n != 1 || len(el) != 0 {
		t.Errorf("%d \"seed imported\" lines, error lines %q; want 1 and none", n, el)
	}
	if n, f := len(ev.of(t, seeddir.Imported, name)), ev.of(t, seeddir.Failed, name); n != 1 || len(f) != 0 {
		t.Errorf("%d imported events, failed events %+v; want 1 and none", n, f)
	}

	// Two full-size parts and nothing after: read once the longer quiet
	// period is over, refused in one line naming its parts.
	other := uniqueImage(t, "docker.io/ctrseed-test/split-parts:2", false, testseed.Gzip)
	data = ociSeed(t, other, testseed.Uncompressed)
	part = len(data) / 3
	const lone = "lone.tar.001"
	dropIn(t, seeds, "lone.tar.001", data[:part])
	dropIn(t, seeds, "lone.tar.002", data[part:2*part])
	dropped := time.Now()
	ev.settle(t)
	if el := errorLines(pd.d.Log(), lone); len(el) > 0 {
		t.Fatalf("an incomplete set refused within its quiet period:\n%s", strings.Join(el, "\n"))
	}
	ev.wait(t, time.Minute, "the incomplete set refused", func(evs []seeddir.Event) error {
		if len(eventsOf(evs, seeddir.Failed, lone)) == 0 {
			return fmt.Errorf("no failed event for %s yet", lone)
		}
		return nil
	})
	// Not within the 5 s that a file's or a directory's quiet period would
	// have allowed: the set waited for its own.
	if took := time.Since(dropped); took < 5*time.Second {
		t.Errorf("the incomplete set refused %v after its parts were there, within its quiet period", took.Round(time.Millisecond))
	}
	const why = "its 2 parts lone.tar.001 to lone.tar.002 end inside the archive"
	if f := ev.of(t, seeddir.Failed, lone); len(f) != 1 || !strings.Contains(f[0].Error, why) {
		t.Errorf("failed events %+v; want one saying the parts end inside the archive", f)
	}
	el := errorLines(pd.d.Log(), lone)
	if len(el) != 1 || !strings.Contains(el[0], why) {
		t.Errorf("error lines %q; want one saying the parts end inside the archive", el)
	}
	pd.assertSettled(t)
}
