package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestPluginPruneSharedImage: with prune = true, an image two seeds bring
// (a shared base or pause image) stays pinned while either is present:
// the one whose label it carries leaving does not unpin it; the image
// then names the seed still there, and when that one leaves too, it is
// unpinned.
func TestPluginPruneSharedImage(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	shared := uniqueImage(t, "docker.io/ctrseed-test/prune-shared:1", false, testseed.Gzip)
	own := uniqueImage(t, "docker.io/ctrseed-test/prune-own:1", false, testseed.Gzip)
	// a.tar: the shared image alone; b.tar: the shared image and its own.
	var a, b testseed.Seed
	a.Add(shared.Name, shared.Manifest, shared.Blobs)
	b.Add(shared.Name, shared.Manifest, shared.Blobs)
	b.Add(own.Name, own.Manifest, own.Blobs)
	os.WriteFile(filepath.Join(seeds, "a.tar"), archive(t, testseed.Uncompressed, a.WriteOCITar), 0o644)
	os.WriteFile(filepath.Join(seeds, "b.tar"), archive(t, testseed.Uncompressed, b.WriteOCITar), 0o644)
	pd := startPluginWith(t, seeds, harness.DaemonOptions{DisableCRI: true}, map[string]any{"prune": true})
	is := pd.c.ImageService()
	labelOf := func(name string) (seed string, pinned bool, err error) {
		img, err := is.Get(nsCtx(pd.ns), name)
		if err != nil {
			return "", false, err
		}
		_, pinned = img.Labels[labelPinned]
		return img.Labels[labelSeed], pinned, nil
	}
	// The smaller seed first: the shared image carries the larger's label.
	waitFor(t, importWait, "both seeds imported", func() error {
		if imported(pd.d.Log(), "a.tar") == 0 || imported(pd.d.Log(), "b.tar") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if seed, pinned, err := labelOf(shared.Name); err != nil || seed != "b.tar" || !pinned {
		t.Fatalf("shared image: seed %q, pinned %v, %v; want b.tar's, pinned", seed, pinned, err)
	}

	// b.tar leaves: its own image is unpinned, the shared one is not.
	if err := os.Remove(filepath.Join(pd.seeds, "b.tar")); err != nil {
		t.Fatal(err)
	}
	const unpinned, kept = "seed gone: image unpinned (prune = true)", "seed gone: image kept pinned, another seed brings it"
	waitFor(t, importWait, "b.tar's images dealt with", func() error {
		if _, pinned, err := labelOf(own.Name); err != nil || pinned {
			return fmt.Errorf("own image: pinned %v, %v", pinned, err)
		}
		for _, msg := range []string{unpinned, kept} {
			for _, l := range seedLines(pd.d.Log(), "info", msg, "b.tar") {
				if strings.Contains(l, shared.Name) {
					return nil
				}
			}
		}
		return fmt.Errorf("no line about the shared image yet")
	})
	if seed, pinned, err := labelOf(shared.Name); err != nil || !pinned || seed != "a.tar" {
		t.Errorf("shared image after b.tar left: seed %q, pinned %v, %v; want pinned, a.tar's (a.tar still brings it)", seed, pinned, err)
	}
	if l := seedLines(pd.d.Log(), "info", unpinned, "b.tar"); len(l) != 1 || !strings.Contains(l[0], own.Name) {
		t.Errorf("unpin lines for b.tar %q; want one, naming %s", l, own.Name)
	}
	if l := seedLines(pd.d.Log(), "info", kept, "b.tar"); len(l) != 1 || !strings.Contains(l[0], shared.Name) || !strings.Contains(l[0], "a.tar") {
		t.Errorf("kept-pinned lines for b.tar %q; want one, naming %s and a.tar", l, shared.Name)
	}

	// a.tar leaves: nobody brings the shared image now.
	if err := os.Remove(filepath.Join(pd.seeds, "a.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, importWait, "the shared image unpinned", func() error {
		if _, pinned, err := labelOf(shared.Name); err != nil || pinned {
			return fmt.Errorf("pinned %v, %v", pinned, err)
		}
		return nil
	})
	pd.assertSettled(t)
}
