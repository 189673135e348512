package test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var impTarFiles = testutil.TarFiles

// impRawEntry is a hand-made tar entry, for archives no tool would write.
type impRawEntry = testutil.RawEntry

const impOciLayoutBody = `{"imageLayoutVersion":"1.0.0"}`

// impLayoutWith is an OCI layout tar whose index.json lists the entries.
func impLayoutWith(t *testing.T, entries []ocispec.Descriptor, extra ...impRawEntry) []byte {
	t.Helper()
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries})
	if err != nil {
		t.Fatal(err)
	}
	es := []impRawEntry{
		{Name: "oci-layout", Body: []byte(impOciLayoutBody)},
		{Name: "index.json", Body: idx},
	}
	return testutil.RawTar(t, append(es, extra...)...)
}

func impBlobEntry(d digest.Digest, p []byte) impRawEntry {
	return impRawEntry{Name: "blobs/sha256/" + d.Encoded(), Body: p}
}

func impWriteBytes(t *testing.T, name string, p []byte) string {
	t.Helper()
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), name), p)
}

// impNamedEntry is desc as Seed.Add names it.
func impNamedEntry(b *testseed.Built) ocispec.Descriptor {
	var s testseed.Seed
	s.Add(b.Name, b.Manifest, nil)
	return s.Manifests[0]
}

// impErrorLines returns stderr's lines, every one of which must be
// ctr-seed's own (no library log lines). trailer, if not "", is the
// "N of M images failed" line main prints after the per-image lines when
// several failed: it must be the last line, and is not returned.
func impErrorLines(t *testing.T, stderr, trailer string) []string {
	t.Helper()
	out := impLines(stderr)
	if trailer != "" {
		if len(out) == 0 || out[len(out)-1] != trailer {
			t.Errorf("stderr does not end with %q:\n%s", trailer, stderr)
			return out
		}
		out = out[:len(out)-1]
	}
	return out
}

func impCorrupt(t *testing.T, b *testseed.Built, blobs map[digest.Digest][]byte) digest.Digest {
	t.Helper()
	top := b.Layers[len(b.Layers)-1] // the test's own layer: no other test has it
	bad := bytes.Clone(blobs[top.Digest])
	bad[len(bad)/2] ^= 0xff
	blobs[top.Digest] = bad
	return top.Digest
}

// ---- 8. partial success ----

func TestImportPartialFailure(t *testing.T) {
	ns := namespace(t)
	good := uniqueImage(t, "registry.local/partial/good:1", impHostPlatform(), false, testseed.Gzip)
	bad := uniqueImage(t, "registry.local/partial/bad:1", impHostPlatform(), false, testseed.Gzip)
	s := impOciSeedOf(t, good, bad)
	layer := impCorrupt(t, bad, s.Blobs)
	seed := writeOCI(t, s, testseed.Uncompressed)

	r := ctrSeedRun(t, ns, "import", seed)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	want := regexp.MustCompile(`^ctr-seed: seed ` + regexp.QuoteMeta(seed) + `: image ` + regexp.QuoteMeta(bad.Name) +
		` \(` + regexp.QuoteMeta(bad.Manifest.Digest.String()) + `\): .*digest mismatch: expected ` +
		regexp.QuoteMeta(layer.String()) + `, got sha256:[0-9a-f]{64}\b`)
	fl := impErrorLines(t, r.stderr, "")
	if len(fl) != 1 || !want.MatchString(fl[0]) {
		t.Errorf("stderr:\n%s\nwant one line matching %s", r.stderr, want)
	}
	if strings.Contains(r.stderr, good.Name) || strings.Contains(r.stdout, bad.Name) {
		t.Errorf("good image reported failed or bad one imported:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	_, sums := impParseStdout(t, r.stdout)
	if len(sums) != 1 || len(sums[0].names) != 1 || sums[0].names[0] != good.Name || sums[0].target != good.Manifest.Digest {
		t.Errorf("summaries %+v, want one for %s", sums, good.Name)
	}
	impAssertTargets(t, ns, map[string]digest.Digest{good.Name: good.Manifest.Digest})
	impAssertUnpacked(t, ns, good.Name)
	if ls := impSeedLeases(t, ns); len(ls) != 0 {
		t.Errorf("leases left: %v", ls)
	}
	// The bad image's own content is gone; its config was written before
	// the layer failed, and nothing references it now.
	if _, err := dclient(t).ContentStore().Info(nsCtx(ns), bad.Config.Digest); err == nil {
		t.Errorf("the failed image's config %s is still in the store", bad.Config.Digest)
	}
}

// ---- 9. bad inputs ----

// impBadCase is a seed that must be refused: image is the entry whose import
// fails ("" when the seed itself cannot be opened), blob the digest the
// error must name ("" if none), cause a regexp the error must match.
type impBadCase struct {
	seed  string
	image *testseed.Built
	blob  digest.Digest
	cause string
}

func TestImportBadInputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) impBadCase
	}{
		{"corrupt-blob", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/corrupt:1", impHostPlatform(), false, testseed.Gzip)
			s := impOciSeedOf(t, b)
			d := impCorrupt(t, b, s.Blobs)
			return impBadCase{writeOCI(t, s, testseed.Uncompressed), b, d,
				"digest mismatch: expected " + regexp.QuoteMeta(d.String()) + ", got sha256:[0-9a-f]{64}"}
		}},
		{"missing-blob", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/missing:1", impHostPlatform(), false, testseed.Gzip)
			s := impOciSeedOf(t, b)
			d := b.Layers[len(b.Layers)-1].Digest
			delete(s.Blobs, d)
			return impBadCase{writeOCI(t, s, testseed.Uncompressed), b, d, "not in the seeds$"}
		}},
		{"short-blob", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/short:1", impHostPlatform(), false, testseed.Gzip)
			s := impOciSeedOf(t, b)
			d := b.Layers[len(b.Layers)-1].Digest
			s.Blobs[d] = s.Blobs[d][:len(s.Blobs[d])-1]
			return impBadCase{writeOCI(t, s, testseed.Uncompressed), b, d, "size mismatch: expected"}
		}},
		{"truncated", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/truncated:1", impHostPlatform(), false, testseed.Gzip)
			full, err := os.ReadFile(writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed))
			if err != nil {
				t.Fatal(err)
			}
			return impBadCase{seed: impWriteBytes(t, "seed.tar", full[:len(full)/2]), cause: "truncated archive after [0-9]+ entries"}
		}},
		{"truncated-gzip", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/truncated-gz:1", impHostPlatform(), false, testseed.Uncompressed)
			full, err := os.ReadFile(writeOCI(t, impOciSeedOf(t, b), testseed.Gzip))
			if err != nil {
				t.Fatal(err)
			}
			return impBadCase{seed: impWriteBytes(t, "seed.tar.gz", full[:len(full)/2]), cause: "gzip-compressed seed: truncated archive"}
		}},
		{"symlink-to-host", func(t *testing.T) impBadCase {
			b := uniqueImage(t, "registry.local/bad/symlink:1", impHostPlatform(), false, testseed.Gzip)
			top := b.Layers[len(b.Layers)-1].Digest
			var extra []impRawEntry
			for d, p := range b.Blobs {
				if d == top {
					extra = append(extra, impRawEntry{Name: "blobs/sha256/" + d.Encoded(), Type: tar.TypeSymlink, Link: "/etc/passwd"})
				} else {
					extra = append(extra, impBlobEntry(d, p))
				}
			}
			seed := impWriteBytes(t, "seed.tar", impLayoutWith(t, []ocispec.Descriptor{impNamedEntry(b)}, extra...))
			return impBadCase{seed, b, top, "link points outside the archive"}
		}},
		{"broken-index", func(t *testing.T) impBadCase {
			return impBadCase{seed: impWriteBytes(t, "seed.tar", testutil.RawTar(t, []impRawEntry{
				{Name: "oci-layout", Body: []byte(impOciLayoutBody)},
				{Name: "index.json", Body: []byte(`{"manifests": [`)},
			}...)), cause: "index.json: not a valid image index"}
		}},
		{"not-a-tar", func(t *testing.T) impBadCase {
			return impBadCase{seed: impWriteBytes(t, "seed.tar", []byte(strings.Repeat("hello, I am not a tar\n", 100))), cause: "not a tar archive"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			bc := tc.mk(t)
			r := ctrSeedRun(t, ns, "import", bc.seed)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			prefix, trailer := "ctr-seed: seed "+regexp.QuoteMeta(bc.seed)+": ", ""
			if bc.image != nil {
				prefix += "image " + regexp.QuoteMeta(bc.image.Name) + ` \(` + regexp.QuoteMeta(bc.image.Manifest.Digest.String()) + `\): `
			}
			re := "^" + prefix
			if bc.blob != "" {
				re += ".*" + regexp.QuoteMeta(bc.blob.String())
			}
			re += ".*(" + bc.cause + ")"
			t.Logf("stderr: %s", r.stderr)
			el := impErrorLines(t, r.stderr, trailer)
			if len(el) != 1 || !regexp.MustCompile(re).MatchString(el[0]) {
				t.Errorf("stderr:\n%s\nwant one line matching %s", r.stderr, re)
			}
			if _, sums := impParseStdout(t, r.stdout); len(sums) != 0 {
				t.Errorf("a summary for a failed import: %+v", sums)
			}
			assertNothingLeft(t, ns)
		})
	}
}

// ---- 10. usage errors ----

func TestImportUsageErrors(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "registry.local/usage/a:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	for _, tc := range []struct {
		name    string
		args    []string
		mention string
	}{
		{"no-args", []string{"import"}, "seed"},
		{"unknown-flag", []string{"import", "--no-such-flag", seed}, "no-such-flag"},
		{"label-novalue", []string{"import", "--label", "novalue", seed}, "novalue"},
		{"label-nokey", []string{"import", "--label", "=v", seed}, "--label"},
		{"skip-digest-without-digests", []string{"import", "--skip-digest-for-named", seed}, "--skip-digest-for-named"},
		{"bad-platform", []string{"import", "--platform", "linux/amd64/x/y/z", seed}, "--platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctrSeedRun(t, ns, tc.args...)
			t.Logf("stderr: %s", r.stderr)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.mention) {
				t.Errorf("stderr does not mention %q:\n%s", tc.mention, r.stderr)
			}
		})
	}
	assertNothingLeft(t, ns)
}
