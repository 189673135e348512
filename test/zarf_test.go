package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zarfPackageFixture is a zarf package built from zarf's documented layout
// (zarf itself is too large a build for the test budget): a zstd tar
// holding zarf.yaml and an OCI layout under images/ whose entries are
// named by org.opencontainers.image.base.name (src/pkg/images testdata),
// beside a helm chart artifact as zarf's layouts hold them. It returns the
// package's bytes.
func zarfPackageFixture(t *testing.T, imgs map[string]*testseed.Built) []byte {
	t.Helper()
	var s testseed.Seed
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s.AddRaw(imgs[n].Manifest, map[string]string{"org.opencontainers.image.base.name": n}, imgs[n].Blobs)
	}
	// A helm chart, as `zarf package create` stores charts it pulls by OCI.
	chart := []byte("chart tarball")
	cfg := []byte(`{"name":"podinfo","version":"6.4.0"}`)
	cd := ocispec.Descriptor{MediaType: "application/vnd.cncf.helm.config.v1+json", Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	ld := ocispec.Descriptor{MediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip", Digest: digest.FromBytes(chart), Size: int64(len(chart))}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	s.AddRaw(md, map[string]string{"org.opencontainers.image.base.name": "ghcr.io/stefanprodan/charts/podinfo:6.4.0"},
		map[digest.Digest][]byte{md.Digest: m, cd.Digest: cfg, ld.Digest: chart})
	var layout bytes.Buffer
	if err := s.WriteOCITar(&layout); err != nil {
		t.Fatal(err)
	}
	files := testutil.TarFiles(t, layout.Bytes())
	es := []testutil.RawEntry{{Name: "zarf.yaml", Body: []byte("kind: ZarfPackageConfig\nmetadata:\n  name: fixture\n")}}
	var inner []string
	for n := range files {
		inner = append(inner, n)
	}
	sort.Strings(inner)
	for _, n := range inner {
		es = append(es, testutil.RawEntry{Name: "images/" + n, Body: []byte(files[n])})
	}
	return testutil.Archive(t, testseed.Zstd, testutil.Bytes(testutil.RawTar(t, es...)))
}

// zarfSplit splits b as zarf's --max-package-size does: base.part000 is
// the JSON header, base.part001… the bytes.
func zarfSplit(t *testing.T, base string, b []byte, size int) []string {
	t.Helper()
	sum := sha256.Sum256(b)
	var parts []string
	for i := 0; len(b) > 0; i++ {
		n := min(size, len(b))
		p := fmt.Sprintf("%s.part%03d", base, i+1)
		testutil.WriteFile(t, p, b[:n])
		parts = append(parts, p)
		b = b[n:]
	}
	h, _ := json.Marshal(map[string]any{"Sha256Sum": hex.EncodeToString(sum[:]), "Bytes": len(bytesJoin(t, parts)), "Count": len(parts)})
	testutil.WriteFile(t, base+".part000", h)
	return append([]string{base + ".part000"}, parts...)
}

func bytesJoin(t *testing.T, parts []string) []byte {
	var all []byte
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// A zarf package is a seed: its images are named by zarf's annotation and
// land unpacked, its helm chart is skipped as no image; split by zarf's
// scheme it is read by its .part000 header, checked against it (a missing
// part, a flipped byte: one line each).
func TestZarfPackages(t *testing.T) {
	a := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
	imgs := map[string]*testseed.Built{"docker.io/ctrseed-test/zarf-app:1.0": a}
	pkg := zarfPackageFixture(t, imgs)
	whole := testutil.WriteFile(t, filepath.Join(t.TempDir(), "zarf-package-fixture-amd64-0.1.tar.zst"), pkg)
	base := filepath.Join(t.TempDir(), "zarf-package-fixture-amd64-0.1.tar.zst")
	parts := zarfSplit(t, base, pkg, len(pkg)/3+1)
	for i, seed := range []string{whole, parts[0]} {
		ns := fmt.Sprintf("%s-%d", namespace(t), i)
		r := mustImport(t, ns, seed)
		impAssertTargets(t, ns, map[string]digest.Digest{"docker.io/ctrseed-test/zarf-app:1.0": a.Manifest.Digest})
		impAssertUnpacked(t, ns, "docker.io/ctrseed-test/zarf-app:1.0")
		if !strings.Contains(r.stdout, "not a container image: an artifact (config application/vnd.cncf.helm.config.v1+json)") {
			t.Errorf("%s: the helm chart is not said skipped:\n%s", seed, r.stdout)
		}
		if v := ctrSeedRun(t, ns, "verify", seed); v.code != 0 || !strings.Contains(v.stdout, "zarf") {
			t.Errorf("verify %s: exit %d %q %q", seed, v.code, v.stdout, v.stderr)
		}
	}

	// A part flipped, then a part gone: one line each, nothing left.
	b, _ := os.ReadFile(parts[2])
	b[len(b)/2] ^= 0xff
	os.WriteFile(parts[2], b, 0o644)
	ns := namespace(t) + "-bad"
	r := ctrSeedRun(t, ns, "import", parts[0])
	el := impErrorLines(t, r.stderr, "")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "zarf split package zarf-package-fixture-amd64-0.1.tar.zst: sha256 mismatch: expected ") {
		t.Errorf("flipped byte: exit %d, stderr %q", r.code, r.stderr)
	}
	os.Remove(parts[3])
	r = ctrSeedRun(t, ns, "import", parts[0])
	el = impErrorLines(t, r.stderr, "")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "part zarf-package-fixture-amd64-0.1.tar.zst.part003 is missing (its header says 3 parts)") {
		t.Errorf("missing part: exit %d, stderr %q", r.code, r.stderr)
	}
	assertNothingLeft(t, ns)
}

// haulFixture is a hauler haul built from hauler's store layout (hauler is
// not on the module proxy): a zstd tar of an OCI layout whose entries carry
// kind=dev.hauler/image, io.containerd.image.name (the full reference) and
// org.opencontainers.image.ref.name (without the registry host), beside a
// signature entry (kind=dev.hauler/sigs); with --containerd, hauler drops
// the oci-layout file (and writes a docker manifest.json beside, which
// this fixture leaves out: the layout alone must be enough).
func haulFixture(t *testing.T, name string, b *testseed.Built, withLayoutFile bool) []byte {
	t.Helper()
	var s testseed.Seed
	s.AddRaw(b.Manifest, map[string]string{"kind": "dev.hauler/image", "io.containerd.image.name": name,
		"org.opencontainers.image.ref.name": strings.SplitN(name, "/", 2)[1]}, b.Blobs)
	sig := uniqueImage(t, "registry.local/haul/sig:1", impHostPlatform(), false, testseed.Gzip) // a manifest in the sig's place
	s.AddRaw(sig.Manifest, map[string]string{"kind": "dev.hauler/sigs",
		"org.opencontainers.image.ref.name": "ctrseed-test/haul:sha256-" + b.Manifest.Digest.Encoded() + ".sig"}, sig.Blobs)
	var layout bytes.Buffer
	if err := s.WriteOCITar(&layout); err != nil {
		t.Fatal(err)
	}
	files := testutil.TarFiles(t, layout.Bytes())
	var es []testutil.RawEntry
	var names []string
	for n := range files {
		if n != "oci-layout" || withLayoutFile {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		es = append(es, testutil.RawEntry{Name: n, Body: []byte(files[n])})
	}
	return testutil.Archive(t, testseed.Zstd, testutil.Bytes(testutil.RawTar(t, es...)))
}

// A hauler haul (with or without oci-layout) imports its images by their
// full names, unpacked; its signature entries are skipped, said so.
func TestHaulerHauls(t *testing.T) {
	for _, withLayout := range []bool{true, false} {
		t.Run(fmt.Sprintf("oci-layout-%v", withLayout), func(t *testing.T) {
			b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
			name := "docker.io/ctrseed-test/haul:1"
			seed := testutil.WriteFile(t, filepath.Join(t.TempDir(), "haul.tar.zst"), haulFixture(t, name, b, withLayout))
			ns := namespace(t)
			r := mustImport(t, ns, seed)
			impAssertTargets(t, ns, map[string]digest.Digest{name: b.Manifest.Digest})
			impAssertUnpacked(t, ns, name)
			if !strings.Contains(r.stdout, "(dev.hauler/sigs), not an image") {
				t.Errorf("the signature entry is not said skipped:\n%s", r.stdout)
			}
		})
	}
}
