package test

import (
	"archive/tar"
	"bytes"
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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

// TestHostileSeedRefusedWhenStoreHasBlobs: a blob the store holds is not
// read again, but what the seed's index alone shows is still checked for
// every blob it claims: an entry that is a link out of the archive, or a
// file of another size than its descriptor's, is refused with the usual
// one line, whatever the store holds; the images already there stay.
func TestHostileSeedRefusedWhenStoreHasBlobs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry func(d digest.Digest, p []byte) impRawEntry
		cause string
	}{
		{"symlink-to-shadow", func(d digest.Digest, _ []byte) impRawEntry {
			return impRawEntry{Name: "blobs/sha256/" + d.Encoded(), Type: tar.TypeSymlink, Link: "/etc/shadow"}
		}, "link points outside the archive"},
		{"short-entry", func(d digest.Digest, p []byte) impRawEntry {
			return impBlobEntry(d, p[:len(p)-1])
		}, "size mismatch: expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := uniqueImage(t, "docker.io/ctrseed-test/hostile-"+tc.name+":1", impHostPlatform(), false, testseed.Gzip)
			mustImport(t, ns, writeOCI(t, impOciSeedOf(t, b), testseed.Gzip))

			top := b.Layers[len(b.Layers)-1].Digest
			var entries []impRawEntry
			for d, p := range b.Blobs {
				if d == top {
					entries = append(entries, tc.entry(d, p))
				} else {
					entries = append(entries, impBlobEntry(d, p))
				}
			}
			seed := impWriteBytes(t, "hostile.tar", impLayoutWith(t, []ocispec.Descriptor{impNamedEntry(b)}, entries...))
			r := ctrSeedRun(t, ns, "import", seed)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			re := regexp.MustCompile("^ctr-seed: seed " + regexp.QuoteMeta(seed) + ": image " + regexp.QuoteMeta(b.Name) +
				` \(` + regexp.QuoteMeta(b.Manifest.Digest.String()) + `\): .*` + regexp.QuoteMeta(top.String()) + ".*" + tc.cause)
			if el := impErrorLines(t, r.stderr, ""); len(el) != 1 || !re.MatchString(el[0]) {
				t.Errorf("stderr:\n%s\nwant one line matching %s", r.stderr, re)
			}
			if ls := impSeedLeases(t, ns); len(ls) != 0 {
				t.Errorf("leases left: %v", ls)
			}
			// The earlier import's image is untouched.
			if got := imageMap(t, ns)[b.Name].Target.Digest; got != b.Manifest.Digest {
				t.Errorf("target %s, want %s", got, b.Manifest.Digest)
			}
			impAssertUnpacked(t, ns, b.Name)
		})
	}
}

// TestFreshImportReadsEachLayerOnce: on a fresh import every layer is
// read from its seed once, for the content store and the applier
// together (importer's layerTee), never again for the apply.
func TestFreshImportReadsEachLayerOnce(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "docker.io/ctrseed-test/read-once:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	r := mustImport(t, ns, "--debug", seed)
	impAssertUnpacked(t, ns, b.Name)
	for _, l := range b.Layers {
		once := regexp.MustCompile(`layer read once[^\n]*digest="?` + regexp.QuoteMeta(l.Digest.String()))
		if n := len(once.FindAllString(r.stderr, -1)); n != 1 {
			t.Errorf("layer %s: %d \"read once\" lines, want 1", l.Digest, n)
		}
	}
	if strings.Contains(r.stderr, "layer read again from its seed") {
		t.Errorf("a layer was read from its seed a second time:\n%s", testutil.Tail(r.stderr, 20))
	}
	// The standard layers may be in the store already, from another
	// test's namespace (then they are applied from there); the test's own
	// last layer is not, and must have come through the tap.
	own := b.Layers[len(b.Layers)-1].Digest.String()
	if regexp.MustCompile(`another writer[^\n]*` + regexp.QuoteMeta(own)).MatchString(r.stderr) {
		t.Errorf("layer %s, new to the store, was not read along with its write", own)
	}
}

// TestReimportDoesNotProbe: whether layers can be applied in process is
// probed (a scratch snapshot, two writes in the daemon) when the first
// layer is to be written or applied; a re-import, with every layer
// unpacked already, makes no probe at all.
func TestReimportDoesNotProbe(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "docker.io/ctrseed-test/no-probe:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	const probe = "probe snapshot"
	if r := mustImport(t, ns, "--debug", seed); !strings.Contains(r.stderr, probe) {
		t.Errorf("fresh import: no %q line:\n%s", probe, testutil.Tail(r.stderr, 20))
	}
	r := mustImport(t, ns, "--debug", seed)
	if strings.Contains(r.stderr, probe) {
		t.Errorf("re-import probed the snapshotter:\n%s", testutil.Tail(r.stderr, 20))
	}
	impAssertUnpacked(t, ns, b.Name)
}
