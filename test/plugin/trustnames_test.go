package plugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPluginVerifyEveryName: with verify_keys, a seed whose signed image
// has a second index entry of the same digest under another repository's
// name lands under its signed name alone; the forged name is one error
// line in the log.
func TestPluginVerifyEveryName(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	work := t.TempDir()
	harness.CosignRun(t, work, "generate-key-pair")
	b := uniqueImage(t, "docker.io/ctrseed-test/verify-forged:1", false, testseed.Gzip)
	if err := reg.Push(t.Context(), "library/forged", "1", b.Manifest, b.Blobs); err != nil {
		t.Fatal(err)
	}
	harness.CosignRun(t, work, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "-y", reg.Host+"/library/forged@"+b.Manifest.Digest.String())
	layout := filepath.Join(work, "forged")
	harness.CosignRun(t, work, "save", "--allow-http-registry", "--dir", layout, reg.Host+"/library/forged:1")
	name, forged := reg.Host+"/library/forged:1", "docker.io/library/nginx:latest"
	p := filepath.Join(layout, "index.json")
	var idx ocispec.Index
	ib, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ib, &idx); err != nil {
		t.Fatal(err)
	}
	for i, m := range idx.Manifests {
		if m.Digest == b.Manifest.Digest {
			idx.Manifests[i].Annotations = map[string]string{"io.containerd.image.name": name}
			m.Annotations = map[string]string{"io.containerd.image.name": forged}
			idx.Manifests = append(idx.Manifests, m)
		}
	}
	nb, _ := json.Marshal(idx)
	if err := os.WriteFile(p, nb, 0o644); err != nil {
		t.Fatal(err)
	}
	seeds := newSeedsDir(t)
	pd := startPluginWith(t, seeds, harness.DaemonOptions{DisableCRI: true},
		map[string]any{"verify_keys": []string{filepath.Join(work, "cosign.pub")}})
	if err := os.Rename(layout, filepath.Join(seeds, "forged")); err != nil {
		t.Fatal(err)
	}
	refusals := func() []string {
		var out []string
		for _, l := range errorLines(pd.d.Log(), "forged") {
			if strings.Contains(l, "seed image failed") {
				out = append(out, l)
			}
		}
		return out
	}
	waitFor(t, importWait, "the seed done", func() error {
		if len(refusals()) == 0 || !slices.Contains(imageNames(t, pd.c, pd.ns), name) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if names := imageNames(t, pd.c, pd.ns); len(names) != 1 || names[0] != name {
		t.Errorf("images %v; want %s alone", names, name)
	}
	if r := refusals(); len(r) != 1 || !strings.Contains(r[0], forged) || !strings.Contains(r[0], "want docker.io/library/nginx") {
		t.Errorf("error lines %q; want one refusing %s", r, forged)
	}
	pd.assertServing(t)
	pd.assertSettled(t)
}
