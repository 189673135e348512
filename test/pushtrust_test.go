package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writesTo are the requests that write into repository repo (host
// excluded) of reg: blob uploads, mounts, manifest PUTs.
func writesTo(reg *testregistry.Registry, repo string) []testregistry.Request {
	var out []testregistry.Request
	for _, r := range reg.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && strings.HasPrefix(r.Path, "/v2/"+repo+"/") {
			out = append(out, r)
		}
	}
	return out
}

// sameLength is doc with its last layer dropped, padded with spaces to
// its own length: other bytes, the same size, valid JSON.
func sameLength(t *testing.T, doc []byte) []byte {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(doc, &m); err != nil || len(m.Layers) < 2 {
		t.Fatalf("not a manifest of several layers: %v", err)
	}
	m.Layers = m.Layers[:len(m.Layers)-1]
	b, err := json.Marshal(m)
	if err != nil || len(b) >= len(doc) {
		t.Fatalf("marshal: %v (%d bytes of %d)", err, len(b), len(doc))
	}
	return append(b, bytes.Repeat([]byte(" "), len(doc)-len(b))...)
}

// A document of a seed (manifest, an index's child manifest, config, or
// one over the 32 MiB cap) whose bytes are not its digest's — other
// bytes of the same length, so a read of exactly its size sees no
// difference — is refused in one line before anything is written into
// its repository: no blob, no manifest by tag. An image of another seed
// in the same push lands (the registry's log is live).
func TestPushUnverifiedDocument(t *testing.T) {
	for _, tc := range []struct {
		name string
		// bad makes the seed of the image named name and returns the
		// digest the error line names and the word it says.
		bad func(t *testing.T, name string) (*testseed.Seed, digest.Digest, string)
	}{
		{"manifest", func(t *testing.T, name string) (*testseed.Seed, digest.Digest, string) {
			b := uniqueImage(t, name, impHostPlatform(), false, testseed.Gzip)
			s := impOciSeedOf(t, b)
			s.Blobs[b.Manifest.Digest] = sameLength(t, s.Blobs[b.Manifest.Digest])
			return s, b.Manifest.Digest, "digest mismatch"
		}},
		{"index child", func(t *testing.T, name string) (*testseed.Seed, digest.Digest, string) {
			idx, blobs, _, arm := pullIndex(t, "unverified-child")
			var s testseed.Seed
			s.Add(name, idx, blobs)
			s.Blobs[arm.Manifest.Digest] = sameLength(t, s.Blobs[arm.Manifest.Digest])
			return &s, arm.Manifest.Digest, "digest mismatch"
		}},
		{"config", func(t *testing.T, name string) (*testseed.Seed, digest.Digest, string) {
			b := uniqueImage(t, name, impHostPlatform(), false, testseed.Gzip)
			s := impOciSeedOf(t, b)
			cfg := s.Blobs[b.Config.Digest]
			i := bytes.Index(cfg, []byte(`"linux"`))
			if i < 0 {
				t.Fatalf("config: %s", cfg)
			}
			bad := bytes.Clone(cfg)
			bad[i+1] = 'L'
			s.Blobs[b.Config.Digest] = bad
			return s, b.Config.Digest, "digest mismatch"
		}},
		{"over the cap", func(t *testing.T, name string) (*testseed.Seed, digest.Digest, string) {
			b := uniqueImage(t, name, impHostPlatform(), false, testseed.Gzip)
			doc := b.Blobs[b.Manifest.Digest]
			doc = append(bytes.Clone(doc), bytes.Repeat([]byte(" "), fetcher.MaxJSONSize+1-len(doc))...)
			big := ocispec.Descriptor{MediaType: b.Manifest.MediaType, Digest: digest.FromBytes(doc), Size: int64(len(doc))}
			var s testseed.Seed
			s.Add(name, big, b.Blobs)
			s.Blobs[big.Digest] = doc
			return &s, big.Digest, "cap"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.Start(t, testregistry.Options{})
			const name = "registry.local/push/unverified:1"
			s, bad, says := tc.bad(t, name)
			good := uniqueImage(t, "registry.local/push/verified:1", impHostPlatform(), false, testseed.Gzip)
			r := pushRun(t, "--to", reg.Host, "--plain-http", writeOCI(t, s, testseed.Uncompressed), writeOCI(t, impOciSeedOf(t, good), testseed.Uncompressed))
			t.Logf("stderr: %s", r.stderr)
			el := impErrorLines(t, r.stderr, "")
			if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], bad.String()) || !strings.Contains(el[0], says) {
				t.Errorf("exit %d, stderr %q; want one line naming %s, saying %q", r.code, r.stderr, bad, says)
			}
			if w := writesTo(reg, "registry.local/push/unverified"); len(w) != 0 {
				t.Errorf("written before the document was checked: %v", w)
			}
			if _, err := skopeoDigest(t, reg.Host+"/"+name); err == nil {
				t.Errorf("a manifest was pushed under %s", name)
			}
			if got, err := skopeoDigest(t, reg.Host+"/registry.local/push/verified:1"); err != nil || got != good.Manifest.Digest {
				t.Errorf("the good image: %v %s; want %s\n%s", err, got, good.Manifest.Digest, r.stdout)
			}
		})
	}
}

// An entry named REPO@sha256:X whose descriptor is sha256:Y is refused in
// one line naming both, and nothing goes into REPO; the seed's other
// image lands.
func TestPushPinnedNameOtherDigest(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
	other := uniqueImage(t, "registry.local/push/pin-other:1", impHostPlatform(), false, testseed.Gzip)
	pinned := "registry.local/push/pinned@" + other.Manifest.Digest.String()
	var s testseed.Seed
	s.Add(pinned, b.Manifest, b.Blobs)
	s.Add(other.Name, other.Manifest, other.Blobs)
	r := pushRun(t, "--to", reg.Host, "--plain-http", writeOCI(t, &s, testseed.Uncompressed))
	t.Logf("stderr: %s", r.stderr)
	el := impErrorLines(t, r.stderr, "")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], pinned) || !strings.Contains(el[0], b.Manifest.Digest.String()) {
		t.Errorf("exit %d, stderr %q; want one line naming %s and %s", r.code, r.stderr, pinned, b.Manifest.Digest)
	}
	if w := writesTo(reg, "registry.local/push/pinned"); len(w) != 0 {
		t.Errorf("written under the pinned name: %v", w)
	}
	if strings.Contains(r.stdout, "pushed "+pinned) {
		t.Errorf("reported pushed:\n%s", r.stdout)
	}
	if got, err := skopeoDigest(t, reg.Host+"/"+other.Name); err != nil || got != other.Manifest.Digest {
		t.Errorf("the other image: %v %s", err, got)
	}
}

// One manifest in several repositories of one push: as an image of its
// own, as the child of a multi-arch index (another repository), and the
// image under a second name in a third repository. Blobs can be mounted
// across repositories; manifests are PUT in each.
func TestPushSharedManifest(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	idx, blobs, amd, _ := pullIndex(t, "shared-manifest")
	var s testseed.Seed
	s.Add("registry.local/push/shared-one:1", amd.Manifest, amd.Blobs)
	s.Add("registry.local/push/shared-two:1", amd.Manifest, amd.Blobs)
	s.Add("registry.local/push/shared-multi:1", idx, blobs)
	r := pushRun(t, "--to", reg.Host, "--plain-http", writeOCI(t, &s, testseed.Uncompressed))
	if r.code != 0 {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for ref, want := range map[string]digest.Digest{
		"registry.local/push/shared-one:1":   amd.Manifest.Digest,
		"registry.local/push/shared-two:1":   amd.Manifest.Digest,
		"registry.local/push/shared-multi:1": idx.Digest,
	} {
		if got, err := skopeoDigest(t, reg.Host+"/"+ref); err != nil || got != want {
			t.Errorf("%s: %v %s; want %s", ref, err, got, want)
		}
	}
	// The second repository's layers were mounted, not sent again.
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "shared-two:1 → ") && !strings.Contains(l, ": 0 blobs uploaded") {
			t.Errorf("the second repository got uploads, not mounts: %s", l)
		}
	}
}

// Two seeds naming one tag with different digests: one line naming both,
// exit 1, the first pushed and the second not; with --last-wins the last
// one is pushed, still said in one line, exit 0.
func TestPushTagConflict(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	const name = "registry.local/push/conflict:1"
	a := uniqueImage(t, name, impHostPlatform(), false, testseed.Gzip)
	b := uniqueImage(t, name+"-other", impHostPlatform(), false, testseed.Gzip)
	var sb testseed.Seed
	sb.Add(name, b.Manifest, b.Blobs)
	seedA := writeOCI(t, impOciSeedOf(t, a), testseed.Uncompressed)
	seedB := writeOCI(t, &sb, testseed.Uncompressed)
	r := pushRun(t, "--to", reg.Host, "--plain-http", seedA, seedB)
	t.Logf("stderr: %s", r.stderr)
	el := impErrorLines(t, r.stderr, "")
	both := regexp.MustCompile(regexp.QuoteMeta(a.Manifest.Digest.String()) + `.*` + regexp.QuoteMeta(b.Manifest.Digest.String()) + `|` +
		regexp.QuoteMeta(b.Manifest.Digest.String()) + `.*` + regexp.QuoteMeta(a.Manifest.Digest.String()))
	if r.code != 1 || len(el) != 1 || !both.MatchString(el[0]) || !strings.Contains(el[0], "--last-wins") {
		t.Errorf("exit %d, stderr %q; want one line naming both digests and --last-wins", r.code, r.stderr)
	}
	if got, err := skopeoDigest(t, reg.Host+"/"+name); err != nil || got != a.Manifest.Digest {
		t.Errorf("%s: %v %s; want the first, %s", name, err, got, a.Manifest.Digest)
	}

	r = pushRun(t, "--to", reg.Host, "--plain-http", "--last-wins", seedA, seedB)
	t.Logf("--last-wins stderr: %s", r.stderr)
	el = impErrorLines(t, r.stderr, "")
	if r.code != 0 || len(el) != 1 || !both.MatchString(el[0]) {
		t.Errorf("--last-wins: exit %d, stderr %q; want exit 0 and one line naming both digests", r.code, r.stderr)
	}
	if got, err := skopeoDigest(t, reg.Host+"/"+name); err != nil || got != b.Manifest.Digest {
		t.Errorf("--last-wins: %s: %v %s; want the last, %s", name, err, got, b.Manifest.Digest)
	}
}
