package test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	"github.com/opencontainers/image-spec/identity"
)

// TestReimportRepairs: a re-import writes nothing when everything is in
// place (TestReimportIsFree), but it writes whatever is not: each case
// takes one thing away from (or adds one to) what the first import made,
// and the re-import must put it back, through the import that writes.
func TestReimportRepairs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change alters the namespace after the first import and returns
		// the flags of the re-import.
		change func(t *testing.T, ns string, b *testseed.Built) []string
		// check tells whether the re-import put it back.
		check func(t *testing.T, ns string, b *testseed.Built)
	}{
		{"record-removed", func(t *testing.T, ns string, b *testseed.Built) []string {
			ctr(t, ns, "images", "rm", b.Name)
			return nil
		}, func(t *testing.T, ns string, b *testseed.Built) {
			if img, ok := imageMap(t, ns)[b.Name]; !ok || img.Target.Digest != b.Manifest.Digest {
				t.Errorf("record %s: %+v (present %v), want target %s", b.Name, img.Target, ok, b.Manifest.Digest)
			}
		}},
		{"new-label", func(t *testing.T, ns string, b *testseed.Built) []string {
			return []string{"--label", "reimport=new"}
		}, func(t *testing.T, ns string, b *testseed.Built) {
			if v := imageMap(t, ns)[b.Name].Labels["reimport"]; v != "new" {
				t.Errorf("label reimport = %q, want new", v)
			}
		}},
		{"layer-blob-removed", func(t *testing.T, ns string, b *testseed.Built) []string {
			ctr(t, ns, "content", "rm", b.Layers[0].Digest.String())
			return nil
		}, func(t *testing.T, ns string, b *testseed.Built) {
			if _, err := dclient(t).ContentStore().Info(nsCtx(ns), b.Layers[0].Digest); err != nil {
				t.Errorf("layer %s: %v", b.Layers[0].Digest, err)
			}
		}},
		{"top-snapshot-removed", func(t *testing.T, ns string, b *testseed.Built) []string {
			ctr(t, ns, "snapshots", "rm", identity.ChainID(b.DiffIDs).String())
			return nil
		}, func(t *testing.T, ns string, b *testseed.Built) {
			top := identity.ChainID(b.DiffIDs).String()
			if _, err := dclient(t).SnapshotService("overlayfs").Stat(nsCtx(ns), top); err != nil {
				t.Errorf("top snapshot %s: %v", top, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := uniqueImage(t, "docker.io/ctrseed-test/repair-"+tc.name+":1", impHostPlatform(), false, testseed.Gzip)
			seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
			mustImport(t, ns, seed)
			before := snapshotChain(t, ns)
			flags := tc.change(t, ns, b)
			stop := harness.EventTopics(t, dclient(t), ns)
			r := mustImport(t, ns, append(flags, seed)...)
			// The event says the import wrote: the record is written last,
			// and only by the import that writes.
			if topics := stop(); !slices.ContainsFunc(topics, func(s string) bool { return strings.HasPrefix(s, "/images/") }) {
				t.Errorf("re-import made no record (events %v):\n%s", topics, r.stdout)
			}
			tc.check(t, ns, b)
			impAssertUnpacked(t, ns, b.Name)
			if after := snapshotChain(t, ns); !slices.Equal(before, after) {
				t.Errorf("snapshots %v, then %v", before, after)
			}
			if ls := impSeedLeases(t, ns); len(ls) != 0 {
				t.Errorf("leases left: %v", ls)
			}
		})
	}
}
