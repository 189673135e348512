package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	time.Sleep(3 * time.Second) // the boot pass is over by far
	if el := errorLines(d.Log(), name); len(el) > 0 {
		t.Errorf("seed still open for writing at start was read half-way:\n%s", strings.Join(el, "\n"))
	}
	if _, err := f.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, importWait, "seed imported once complete", func() error {
		return checkImage(pd.c, "k8s.io", img.Name, nil)
	})
	time.Sleep(1500 * time.Millisecond)
	if n := imported(d.Log(), name); n != 1 {
		t.Errorf("%d \"seed imported\" lines for %s, want 1", n, name)
	}
}
