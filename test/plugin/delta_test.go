package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestPluginDeltaSeed: a delta seed dropped into the seeds dir of the node
// it was made for lands complete and unpacked, as from the full seed; on
// a node that lacks what it left out it is one error line, nothing left.
func TestPluginDeltaSeed(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	pd := startPlugin(t, seeds, harness.DaemonOptions{DisableCRI: true})
	work := t.TempDir()

	v1, v2 := testutil.DeltaImages(t, "docker.io/ctrseed-test/delta:1", "docker.io/ctrseed-test/delta:2", platforms.DefaultSpec())
	dropIn(t, seeds, "v1.tar", ociSeed(t, v1, testseed.Gzip))
	waitFor(t, importWait, "v1 imported", func() error { return checkImage(pd.c, pd.ns, v1.Name, pd.labels) })

	inv := filepath.Join(work, "node.json")
	if _, e, code := runCLI(t, work, "--address", pd.d.Address, "-n", pd.ns, "inventory", "--node", "edge", "-o", inv); code != 0 {
		t.Fatalf("inventory: exit %d: %s", code, e)
	}
	full := filepath.Join(work, "v2-full.tar")
	if err := os.WriteFile(full, ociSeed(t, v2, testseed.Uncompressed), 0o644); err != nil {
		t.Fatal(err)
	}
	delta := filepath.Join(work, "v2-delta.tar")
	if o, e, code := runCLI(t, work, "save", "-q", "--offline", "--seed", full, "--have", inv, "-o", delta, v2.Name); code != 0 {
		t.Fatalf("save --have: exit %d: %s %s", code, o, e)
	}
	b, err := os.ReadFile(delta)
	if err != nil {
		t.Fatal(err)
	}
	dropIn(t, seeds, "v2-delta.tar", b)
	waitFor(t, importWait, "the delta imported", func() error { return checkImage(pd.c, pd.ns, v2.Name, pd.labels) })
	if el := errorLines(pd.d.Log(), "v2-delta.tar"); len(el) != 0 {
		t.Errorf("error lines for the delta: %q", el)
	}
	// Unpacked: every layer's chain is committed.
	out, err := pd.d.Ctr(t, "-n", pd.ns, "snapshots", "ls")
	if err != nil || strings.Count(out, "Committed") < len(v2.Layers) {
		t.Errorf("snapshots after the delta (%v):\n%s", err, out)
	}
	pd.assertSettled(t)

	// A node without v1: the delta is refused in one line naming a
	// left-out layer, and nothing of v2 is left.
	other := newSeedsDir(t)
	bare := startPlugin(t, other, harness.DaemonOptions{DisableCRI: true})
	dropIn(t, other, "v2-delta.tar", b)
	waitFor(t, importWait, "the delta refused", func() error {
		if len(errorLines(bare.d.Log(), "v2-delta.tar")) == 0 {
			return os.ErrNotExist
		}
		return nil
	})
	el := errorLines(bare.d.Log(), "v2-delta.tar")
	if len(el) != 1 || !strings.Contains(el[0], "left out of this delta seed, made for inventory edge; not on this node") {
		t.Errorf("error lines %q; want one naming a left-out blob", el)
	}
	if names := imageNames(t, bare.c, bare.ns); len(names) != 0 {
		t.Errorf("images left on the bare node: %v", names)
	}
	bare.assertSettled(t)
}
