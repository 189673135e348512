package test

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
)

// TestUnpackReadsStoreNotSeed: a layer the store already holds is applied
// from the store, never from the seed — so a seed whose copy of it is
// corrupt still imports (the blob is not read, as for content), and the
// result equals a clean import's. Only layers this run copied from a seed
// (hashed on the way) are read from the seed again for the apply.
func TestUnpackReadsStoreNotSeed(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "docker.io/ctrseed-test/store-first:1", impHostPlatform(), false, testseed.Gzip)
	good := writeOCI(t, impOciSeedOf(t, b), testseed.Gzip)
	mustImport(t, ns, "--no-unpack", good) // content only: no snapshot yet

	bad := *b
	bad.Blobs = maps.Clone(b.Blobs)
	l := b.Layers[len(b.Layers)-1].Digest
	blob := bytes.Clone(b.Blobs[l])
	blob[len(blob)/2] ^= 0xff
	bad.Blobs[l] = blob
	corrupt := writeOCI(t, impOciSeedOf(t, &bad), testseed.Uncompressed)
	if r := ctrSeedRun(t, ns, "verify", corrupt); r.code != 1 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Fatalf("fixture: verify of the corrupt seed: exit %d, %s", r.code, r.stderr)
	}

	r := mustImport(t, ns, "--debug", corrupt)
	if !strings.Contains(r.stderr, "applying layer in process") {
		t.Errorf("the layers were not applied in process:\n%s", testutil.Tail(r.stderr, 20))
	}
	impAssertUnpacked(t, ns, b.Name)
	if got := imageMap(t, ns)[b.Name].Target.Digest; got != b.Manifest.Digest {
		t.Errorf("target %s, want %s", got, b.Manifest.Digest)
	}
}
