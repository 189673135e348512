package plugin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

	img := uniqueImage(t, "docker.io/ctrseed-test/split-parts:1", false, testseed.Gzip)
	data := ociSeed(t, img, testseed.Uncompressed)
	part := len(data)/3 + 1 // three parts, the last one shorter
	const name = "app.tar.001"
	for i, p := range [][]byte{data[:part], data[part : 2*part]} {
		dropIn(t, seeds, fmt.Sprintf("app.tar.%03d", i+1), p)
		time.Sleep(2 * time.Second) // four quiet periods
		if el := errorLines(pd.d.Log(), name); len(el) > 0 {
			t.Fatalf("error lines with %d of 3 parts there:\n%s", i+1, strings.Join(el, "\n"))
		}
		if n := imported(pd.d.Log(), name); n != 0 {
			t.Fatalf("imported with %d of 3 parts there", i+1)
		}
	}
	dropIn(t, seeds, "app.tar.003", data[2*part:])
	waitFor(t, importWait, "the split seed imported once whole", func() error {
		return checkImage(pd.c, pd.ns, img.Name, pd.labels)
	})
	time.Sleep(1500 * time.Millisecond)
	if n, el := imported(pd.d.Log(), name), errorLines(pd.d.Log(), name); n != 1 || len(el) != 0 {
		t.Errorf("%d \"seed imported\" lines, error lines %q; want 1 and none", n, el)
	}

	// Two full-size parts and nothing after: read once the longer quiet
	// period is over, refused in one line naming its parts.
	other := uniqueImage(t, "docker.io/ctrseed-test/split-parts:2", false, testseed.Gzip)
	data = ociSeed(t, other, testseed.Uncompressed)
	part = len(data) / 3
	const lone = "lone.tar.001"
	dropIn(t, seeds, "lone.tar.001", data[:part])
	dropIn(t, seeds, "lone.tar.002", data[part:2*part])
	time.Sleep(5 * time.Second)
	if el := errorLines(pd.d.Log(), lone); len(el) > 0 {
		t.Fatalf("an incomplete set refused within its quiet period:\n%s", strings.Join(el, "\n"))
	}
	waitFor(t, time.Minute, "the incomplete set refused", func() error {
		if len(errorLines(pd.d.Log(), lone)) == 0 {
			return fmt.Errorf("no error line for %s yet", lone)
		}
		return nil
	})
	el := errorLines(pd.d.Log(), lone)
	if len(el) != 1 || !strings.Contains(el[0], "its 2 parts lone.tar.001 to lone.tar.002 end inside the archive") {
		t.Errorf("error lines %q; want one saying the parts end inside the archive", el)
	}
	pd.assertSettled(t)
}
