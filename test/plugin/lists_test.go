package plugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	labelSeed        = "io.ctr-seed.seed"
	labelSeedVersion = "io.ctr-seed.seed.version"
)

// TestPluginImageList: k3s's agent/images points, on the plugin. An image
// list (*.txt) is pulled after the seeds, so the layers a seed brought are
// not fetched; its images are pinned and labelled with the list and its
// version, and get repo@digest refs (digest_refs); an imported seed's
// images are labelled with the seed. A reference that cannot be pulled is
// one error line, and is pulled once it can be (backoff). A seed that
// leaves the directory leaves its images, unpinned (prune).
func TestPluginImageList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	// The seed's image and the registry's share their base layers.
	seeded := uniqueImage(t, "docker.io/ctrseed-test/list-base:1", false, testseed.Gzip)
	app := uniqueImage(t, "docker.io/ctrseed-test/list-app:1", false, testseed.Gzip)
	later := uniqueImage(t, "docker.io/ctrseed-test/list-later:1", false, testseed.Gzip)
	if err := reg.Push(ctx, "library/app", "1", app.Manifest, app.Blobs); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	appRef, laterRef := reg.Host+"/library/app:1", reg.Host+"/library/later:1"

	seeds := newSeedsDir(t)
	os.WriteFile(filepath.Join(seeds, "base.tar"), ociSeed(t, seeded, testseed.Uncompressed), 0o644)
	list := "# k3s-style image list\n\n" + appRef + "\n" + laterRef + "\n"
	os.WriteFile(filepath.Join(seeds, "images.txt"), []byte(list), 0o644)
	pd := startPluginWith(t, seeds, harness.DaemonOptions{DisableCRI: true},
		map[string]any{"plain_http": []string{reg.Host}, "digest_refs": true, "prune": true})

	waitFor(t, importWait, "the list's image pulled", func() error { return checkImage(pd.c, pd.ns, appRef, pd.labels) })
	is := pd.c.ImageService()
	img, err := is.Get(nsCtx(pd.ns), appRef)
	if err != nil {
		t.Fatal(err)
	}
	if img.Labels[labelSeed] != "images.txt" || img.Labels[labelSeedVersion] != digest.FromString(list).String() {
		t.Errorf("pulled image labels %v; want %s=images.txt and the list's digest", img.Labels, labelSeed)
	}
	if err := checkImage(pd.c, pd.ns, reg.Host+"/library/app@"+app.Manifest.Digest.String(), pd.labels); err != nil {
		t.Errorf("digest_refs: %v", err)
	}
	for _, d := range reg.BlobGets() {
		if slices.ContainsFunc(seeded.Layers, func(l ocispec.Descriptor) bool { return l.Digest == d }) {
			t.Errorf("layer %s, which the seed brought, was fetched from the registry", d)
		}
	}
	base, err := is.Get(nsCtx(pd.ns), seeded.Name)
	if err != nil {
		t.Fatal(err)
	}
	if base.Labels[labelSeed] != "base.tar" || !strings.HasPrefix(base.Labels[labelSeedVersion], "sha256:") {
		t.Errorf("imported image labels %v; want %s=base.tar and a version", base.Labels, labelSeed)
	}
	if err := checkImage(pd.c, pd.ns, "docker.io/ctrseed-test/list-base@"+seeded.Manifest.Digest.String(), pd.labels); err != nil {
		t.Errorf("digest_refs on an imported image: %v", err)
	}

	// The missing reference: one error line, then pulled once it is there.
	waitFor(t, importWait, "an error line for the missing reference", func() error {
		if len(errorLines(pd.d.Log(), "images.txt")) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	el := errorLines(pd.d.Log(), "images.txt")
	if len(el) != 1 || !strings.Contains(el[0], laterRef) {
		t.Errorf("error lines %q; want one naming %s", el, laterRef)
	}
	if err := reg.Push(ctx, "library/later", "1", later.Manifest, later.Blobs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the missing reference pulled on a retry", func() error {
		return checkImage(pd.c, pd.ns, laterRef, pd.labels)
	})
	if el := errorLines(pd.d.Log(), "images.txt"); len(el) != 1 {
		t.Errorf("%d error lines for the list; want the one", len(el))
	}

	// prune: the seed goes, its images stay, unpinned.
	if err := os.Remove(filepath.Join(seeds, "base.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, importWait, "the gone seed's image unpinned", func() error {
		img, err := is.Get(nsCtx(pd.ns), seeded.Name)
		if err != nil {
			return fmt.Errorf("the image went: %w", err)
		}
		if _, ok := img.Labels[labelPinned]; ok {
			return fmt.Errorf("still pinned")
		}
		return nil
	})
	if img, err := is.Get(nsCtx(pd.ns), appRef); err != nil || img.Labels[labelPinned] != "pinned" {
		t.Errorf("the list's image: %v, labels %v; want it still pinned", err, img.Labels)
	}
	pd.assertSettled(t)
}
