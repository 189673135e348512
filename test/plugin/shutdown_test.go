package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestShutdownDuringBootImport: containerd-seed gets SIGTERM while its
// plugin is importing a big seed at boot. containerd closes the plugin
// (Close): the import is cancelled and cleans up. What must hold: the
// daemon exits by itself, in time, without a panic; the plugin says it
// stopped; no lease or ingest is left (seen after a restart with the seed
// moved away, so no new import can drop a leftover lease); state.json
// still parses and does not record the interrupted import as a verdict;
// and with the seed back, it is imported whole.
func TestShutdownDuringBootImport(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	big := newBigSeed(t, "registry.local/shutdown/big:1", bigLayerSize)
	big.write(t, filepath.Join(seeds, "big.tar"))
	p := startPlugin(t, seeds, harness.DaemonOptions{})
	d, c, ns := p.d, p.c, p.ns
	waitIngest(t, c, ns, big.layer, importWait)

	start := time.Now()
	if err := d.StopMain(); err != nil {
		t.Fatalf("SIGTERM during the boot import: %v", err)
	}
	t.Logf("containerd-seed stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	log := lastRun(d.Log())
	if strings.Contains(log, "panic:") || strings.Contains(log, "fatal error:") {
		t.Errorf("the daemon panicked on SIGTERM:\n%s", tail(log, 40))
	}
	if !strings.Contains(log, "seed import stopped") {
		t.Errorf("no \"seed import stopped\" line in the log:\n%s", tail(log, 40))
	}
	// state.json is absent (nothing recorded yet) or whole.
	root := p.pluginRoot
	if _, err := os.Stat(filepath.Join(root, "state.json")); err == nil {
		if r, ok := readState(t, root).Seeds["big.tar"]; ok {
			t.Errorf("state.json records the interrupted import: %+v", r)
		}
	}

	// Restart without the seed: nothing imports, so whatever is there now
	// is what the interrupted import left.
	parked := filepath.Join(t.TempDir(), "big.tar")
	if err := os.Rename(filepath.Join(seeds, "big.tar"), parked); err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	c = d.Client(t)
	p.c = c
	p.assertSettled(t)
	// Nothing holds the layer now: the collection after the restart (its
	// scheduler's startup delay) removes it if it was committed.
	waitFor(t, 10*time.Second, "the interrupted import's layer collected", func() error {
		if _, err := c.ContentStore().Info(nsCtx(ns), big.layer.Digest); err == nil {
			return fmt.Errorf("layer %s still in the store", big.layer.Digest)
		}
		return nil
	})

	// Back in place, the seed is imported whole.
	if err := os.Rename(parked, filepath.Join(seeds, "big.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, importWait, "big.tar imported after the restart", func() error {
		return checkImage(c, ns, big.name, p.labels)
	})
	assertState(t, root, map[string][]string{"big.tar": {big.name}})
	assertNoLeases(t, c, ns)
}
