package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// signedLayouts pushes images to a real registry, signs some with the
// real cosign (keys it generated, no transparency log), and saves each with
// `cosign save`: the layouts the verify tests start from.
type signedLayouts struct {
	reg  *testregistry.Registry
	work string // cosign.key/.pub (key A), other.key/.pub (key B)
}

func newSignedLayouts(t *testing.T) *signedLayouts {
	sl := &signedLayouts{reg: testregistry.Start(t, testregistry.Options{}), work: t.TempDir()}
	harness.CosignRun(t, sl.work, "generate-key-pair")
	harness.CosignRun(t, sl.work, "generate-key-pair", "--output-key-prefix", "other")
	return sl
}

// save pushes b as repo:1, signs it with keyPrefix's key unless "", and
// returns the cosign save layout of it, its image entry named name.
func (sl *signedLayouts) save(t *testing.T, repo string, b *testseed.Built, keyPrefix, name string) string {
	t.Helper()
	if err := sl.reg.Push(t.Context(), repo, "1", b.Manifest, b.Blobs); err != nil {
		t.Fatal(err)
	}
	if keyPrefix != "" {
		harness.CosignRun(t, sl.work, "sign", "--key", keyPrefix+".key", "--tlog-upload=false", "--allow-http-registry", "-y",
			sl.reg.Host+"/"+repo+"@"+b.Manifest.Digest.String())
	}
	dir := filepath.Join(t.TempDir(), "layout")
	harness.CosignRun(t, sl.work, "save", "--allow-http-registry", "--dir", dir, sl.reg.Host+"/"+repo+":1")
	editIndex(t, dir, func(idx *ocispec.Index) {
		for i, m := range idx.Manifests {
			if m.Annotations["kind"] == "dev.cosignproject.cosign/image" && name != "" {
				idx.Manifests[i].Annotations["io.containerd.image.name"] = name
			}
		}
	})
	return dir
}

func (sl *signedLayouts) key(prefix string) string { return filepath.Join(sl.work, prefix+".pub") }

func editIndex(t *testing.T, dir string, f func(*ocispec.Index)) {
	t.Helper()
	p := filepath.Join(dir, "index.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	f(&idx)
	b, _ = json.Marshal(idx)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sigEntry is the layout's signatures entry.
func sigEntry(t *testing.T, dir string) ocispec.Descriptor {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var idx ocispec.Index
	json.Unmarshal(b, &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["kind"] == "dev.cosignproject.cosign/sigs" {
			return m
		}
	}
	t.Fatalf("no signatures entry in %s", dir)
	return ocispec.Descriptor{}
}

// putBlob writes b into dir's blobs and returns its descriptor's digest.
func putBlob(t *testing.T, dir string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// Images are let in only with a valid cosign signature under a trusted
// key, over their digest, naming their repository; each refusal is one
// line saying why, and leaves nothing; other images of the seed land.
func TestVerifySignatures(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/signed:1", impHostPlatform(), false, testseed.Gzip)
	unsigned := uniqueImage(t, "registry.local/verify/unsigned:1", impHostPlatform(), false, testseed.Gzip)
	name := sl.reg.Host + "/library/signed:1"
	good := sl.save(t, "library/signed", signed, "cosign", name)
	bare := sl.save(t, "library/unsigned", unsigned, "", sl.reg.Host+"/library/unsigned:1")
	keyA, keyB := sl.key("cosign"), sl.key("other")

	refused := func(t *testing.T, seed, cause string, args ...string) {
		t.Helper()
		ns := namespace(t)
		r := ctrSeedRun(t, ns, append(append([]string{"import"}, args...), seed)...)
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], cause) {
			t.Errorf("exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, cause)
		}
		if imgs := imageMap(t, ns); len(imgs) != 0 {
			t.Errorf("records left: %v", keys(imgs))
		}
		assertNothingLeft(t, ns)
	}

	t.Run("right-key", func(t *testing.T) {
		ns := namespace(t)
		mustImport(t, ns, "--verify-key", keyA, good)
		impAssertTargets(t, ns, map[string]digest.Digest{name: signed.Manifest.Digest})
		impAssertUnpacked(t, ns, name)
		// Either of two keys will do.
		mustImport(t, ns+"-two", "--verify-key", keyB, "--verify-key", keyA, good)
	})
	t.Run("other-key", func(t *testing.T) {
		refused(t, good, "image "+name+" ("+signed.Manifest.Digest.String()+"): signature: 1 signature, none valid: not valid for key other.pub", "--verify-key", keyB)
	})
	t.Run("unsigned", func(t *testing.T) {
		refused(t, bare, "signature: no signature", "--verify-key", keyA)
		ns := namespace(t) + "-if-signed"
		r := mustImport(t, ns, "--verify-key", keyA, "--verify", "if-signed", bare)
		if !strings.Contains(r.stderr, "warning: ") || !strings.Contains(r.stderr, "no signature: let in (--verify=if-signed)") {
			t.Errorf("no warning line: %q", r.stderr)
		}
		if _, ok := imageMap(t, ns)[sl.reg.Host+"/library/unsigned:1"]; !ok {
			t.Errorf("if-signed: the unsigned image was not let in")
		}
		// if-signed still refuses a bad signature.
		refused(t, good, "not valid for key other.pub", "--verify-key", keyB, "--verify", "if-signed")
	})
	t.Run("altered-signature", func(t *testing.T) {
		// The signature bytes changed, the manifest digest fixed up: only
		// the signature is wrong.
		dir := sl.save(t, "library/signed", signed, "", name)
		e := sigEntry(t, dir)
		b, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Digest.Encoded()))
		var m ocispec.Manifest
		json.Unmarshal(b, &m)
		sig := m.Layers[0].Annotations["dev.cosignproject.cosign/signature"]
		m.Layers[0].Annotations["dev.cosignproject.cosign/signature"] = strings.Replace(sig, sig[10:14], "AAAA", 1)
		nb, _ := json.Marshal(m)
		nd := putBlob(t, dir, nb)
		editIndex(t, dir, func(idx *ocispec.Index) {
			for i := range idx.Manifests {
				if idx.Manifests[i].Digest == e.Digest {
					idx.Manifests[i].Digest, idx.Manifests[i].Size = nd, int64(len(nb))
				}
			}
		})
		refused(t, dir, "not valid for key cosign.pub", "--verify-key", keyA)
	})
	t.Run("signature-of-another-image", func(t *testing.T) {
		// unsigned's layout, given signed's (valid) signatures.
		dir := sl.save(t, "library/unsigned", unsigned, "", sl.reg.Host+"/library/unsigned:1")
		e := sigEntry(t, good)
		copyBlobs(t, good, dir)
		editIndex(t, dir, func(idx *ocispec.Index) { idx.Manifests = append(idx.Manifests, e) })
		refused(t, dir, "signature is for "+signed.Manifest.Digest.String()+" not "+unsigned.Manifest.Digest.String(), "--verify-key", keyA)
	})
	t.Run("identity", func(t *testing.T) {
		dir := sl.save(t, "library/signed", signed, "", sl.reg.Host+"/library/renamed:1")
		refused(t, dir, "identity "+sl.reg.Host+"/library/signed, want "+sl.reg.Host+"/library/renamed", "--verify-key", keyA)
		ns := namespace(t) + "-ignored"
		mustImport(t, ns, "--verify-key", keyA, "--verify-ignore-identity", dir)
	})
	t.Run("mixed-seed", func(t *testing.T) {
		// One seed, a signed and an unsigned image: the signed one lands.
		dir := sl.save(t, "library/signed", signed, "", name)
		copyBlobs(t, bare, dir)
		b, _ := os.ReadFile(filepath.Join(bare, "index.json"))
		var other ocispec.Index
		json.Unmarshal(b, &other)
		editIndex(t, dir, func(idx *ocispec.Index) {
			for _, m := range other.Manifests {
				if m.Annotations["kind"] == "dev.cosignproject.cosign/image" {
					idx.Manifests = append(idx.Manifests, m)
				}
			}
		})
		ns := namespace(t)
		r := ctrSeedRun(t, ns, "import", "--verify-key", keyA, dir)
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], sl.reg.Host+"/library/unsigned:1") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		// cosign save's layout has one sigs entry, for its one image: here
		// it holds signed's signatures, so unsigned's check finds them and
		// says they are another image's.
		impAssertTargets(t, ns, map[string]digest.Digest{name: signed.Manifest.Digest})
	})
}

// copyBlobs copies every blob of layout src into layout dst.
func copyBlobs(t *testing.T, src, dst string) {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(src, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, _ := os.ReadFile(filepath.Join(src, "blobs", "sha256", e.Name()))
		os.WriteFile(filepath.Join(dst, "blobs", "sha256", e.Name()), b, 0o644)
	}
}

// ctr-seed save carries an image's cosign signatures from the registry
// (the sha256-<hex>.sig tag), named as cosign tags them and marked as
// cosign's layout marks them, out of docker's manifest.json; the seed then
// verifies at import, naming the image, so the identity is checked too.
// --no-referrers leaves them out.
func TestSaveCarriesSignatures(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/carried:1", impHostPlatform(), false, testseed.Gzip)
	sl.save(t, "library/carried", signed, "cosign", "")
	ref := sl.reg.Host + "/library/carried:1"
	// An attestation too (cosign attest: the .att tag).
	pred := testutil.WriteFile(t, filepath.Join(t.TempDir(), "predicate.json"), []byte(`{"built-by":"`+t.Name()+`"}`))
	harness.CosignRun(t, sl.work, "attest", "--key", "cosign.key", "--type", "custom", "--predicate", pred, "--tlog-upload=false",
		"--allow-http-registry", "-y", sl.reg.Host+"/library/carried@"+signed.Manifest.Digest.String())
	seed := filepath.Join(t.TempDir(), "signed.tar")
	r := mustSave(t, namespace(t), "--plain-http", "-o", seed, ref)
	if !strings.Contains(r.stdout, ", 1 signature, 1 attestation or SBOM") {
		t.Errorf("save summary %q; want 1 signature and 1 attestation", r.stdout)
	}
	files := testutil.TarFiles(t, mustRead(t, seed))
	var idx ocispec.Index
	json.Unmarshal([]byte(files["index.json"]), &idx)
	sigName := sl.reg.Host + "/library/carried:sha256-" + signed.Manifest.Digest.Encoded() + ".sig"
	found := false
	for _, m := range idx.Manifests {
		if m.Annotations["io.containerd.image.name"] == sigName && m.Annotations["kind"] == "dev.cosignproject.cosign/sigs" {
			found = true
		}
	}
	var mj []struct{ RepoTags []string }
	json.Unmarshal([]byte(files["manifest.json"]), &mj)
	if !found || len(mj) != 1 {
		t.Errorf("index entries %v, manifest.json %v; want the signature entry %s, and manifest.json the image alone", idx.Manifests, mj, sigName)
	}
	if ls := ctrSeedRun(t, namespace(t), "ls", seed); !regexp.MustCompile(`(?m)^\S+ +` + regexp.QuoteMeta(ref) + ` .* 1 +0$`).MatchString(ls.stdout) {
		t.Errorf("ls does not count the image's signature:\n%s", ls.stdout)
	}
	ns := namespace(t)
	mustImport(t, ns, "--verify-key", sl.key("cosign"), seed)
	impAssertTargets(t, ns, map[string]digest.Digest{ref: signed.Manifest.Digest})
	impAssertUnpacked(t, ns, ref)
	// The signature is in the store, held by the image (no record of its
	// own), and goes with it.
	var sigDigest, attDigest digest.Digest
	for _, m := range idx.Manifests {
		switch m.Annotations["kind"] {
		case "dev.cosignproject.cosign/sigs":
			sigDigest = m.Digest
		case "dev.cosignproject.cosign/atts":
			attDigest = m.Digest
		}
	}
	if _, ok := imageMap(t, ns)[sigName]; ok || len(imageMap(t, ns)) != 1 {
		// (the attestation entry is no image either)
		t.Errorf("images %v; want the image alone, no record for its signature", keys(imageMap(t, ns)))
	}
	if out := ctr(t, ns, "content", "ls", "-q"); attDigest == "" || !strings.Contains(out, attDigest.String()) {
		t.Errorf("attestation manifest %q not in the content store", attDigest)
	}
	if out := ctr(t, ns, "content", "ls", "-q"); !strings.Contains(out, sigDigest.String()) {
		t.Errorf("signature manifest %s not in the content store:\n%s", sigDigest, ctr(t, ns, "content", "ls"))
	}
	ctr(t, ns, "images", "rm", "--sync", ref)
	if out := ctr(t, ns, "content", "ls", "-q"); strings.Contains(out, sigDigest.String()) {
		t.Errorf("signature manifest %s outlived its image", sigDigest)
	}

	// cosign reads the seed's layout, untarred, as its own.
	local := filepath.Join(t.TempDir(), "layout")
	os.Mkdir(local, 0o755)
	if out, err := exec.Command("tar", "-C", local, "-xf", seed).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	harness.CosignRun(t, sl.work, "verify", "--key", sl.key("cosign"), "--insecure-ignore-tlog", "--local-image", local)

	bare := filepath.Join(t.TempDir(), "bare.tar")
	if r := mustSave(t, namespace(t), "--plain-http", "--no-referrers", "-o", bare, ref); strings.Contains(r.stdout, "signature") {
		t.Errorf("--no-referrers: %q", r.stdout)
	}
	r = ctrSeedRun(t, namespace(t)+"-bare", "import", "--verify-key", sl.key("cosign"), bare)
	if r.code != 1 || !strings.Contains(r.stderr, "no signature") {
		t.Errorf("a seed saved without signatures: exit %d, %q", r.code, r.stderr)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pull --verify-key checks the signature it finds in the seeds or the
// registry (cosign's tag) before anything is written; an unsigned image
// is refused, nothing left.
func TestPullVerifies(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/pulled:1", impHostPlatform(), false, testseed.Gzip)
	unsigned := uniqueImage(t, "registry.local/verify/pulled-bare:1", impHostPlatform(), false, testseed.Gzip)
	sl.save(t, "library/pulled", signed, "cosign", "")
	sl.save(t, "library/pulled-bare", unsigned, "", "")
	ref, bareRef := sl.reg.Host+"/library/pulled:1", sl.reg.Host+"/library/pulled-bare:1"
	ns := namespace(t)
	if r := pullRun(t, ns, "--plain-http", "--verify-key", sl.key("cosign"), ref); r.code != 0 {
		t.Fatalf("pull of a signed image: exit %d: %s", r.code, r.stderr)
	}
	impAssertTargets(t, ns, map[string]digest.Digest{ref: signed.Manifest.Digest})
	bad := namespace(t) + "-refused"
	r := pullRun(t, bad, "--plain-http", "--verify-key", sl.key("cosign"), bareRef)
	if r.code != 1 || !strings.Contains(r.stderr, "signature: no signature") {
		t.Errorf("pull of an unsigned image: exit %d, %q", r.code, r.stderr)
	}
	r = pullRun(t, bad, "--plain-http", "--verify-key", sl.key("other"), ref)
	if r.code != 1 || !strings.Contains(r.stderr, "not valid for key other.pub") {
		t.Errorf("pull with another key: exit %d, %q", r.code, r.stderr)
	}
	if imgs := imageMap(t, bad); len(imgs) != 0 {
		t.Errorf("records left: %v", keys(imgs))
	}
	assertNothingLeft(t, bad)
}

// An OCI 1.1 referrer of an image (an SBOM whose subject is the image) in
// the registry travels in the saved seed, marked with its subject, and
// lands in the content store with the image (held by it, no record).
func TestSaveCarriesReferrers(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	b := uniqueImage(t, "registry.local/verify/referred:1", impHostPlatform(), false, testseed.Gzip)
	if err := reg.Push(t.Context(), "library/referred", "1", b.Manifest, b.Blobs); err != nil {
		t.Fatal(err)
	}
	empty := []byte("{}")
	sbom := []byte(`{"spdxVersion":"SPDX-2.3","name":"` + t.Name() + `"}`)
	cd := ocispec.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: digest.FromBytes(empty), Size: 2}
	ld := ocispec.Descriptor{MediaType: "application/spdx+json", Digest: digest.FromBytes(sbom), Size: int64(len(sbom))}
	subject := ocispec.Descriptor{MediaType: b.Manifest.MediaType, Digest: b.Manifest.Digest, Size: b.Manifest.Size}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/spdx+json", Config: cd, Layers: []ocispec.Descriptor{ld}, Subject: &subject})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	if err := reg.Push(t.Context(), "library/referred", "", md, map[digest.Digest][]byte{md.Digest: m, cd.Digest: empty, ld.Digest: sbom}); err != nil {
		t.Fatal(err)
	}
	// Distribution has no referrers API: as the OCI spec tells a client
	// pushing a manifest with a subject there, the referrer is also listed
	// in the fallback tag sha256-<hex> of the subject (what oras does).
	listed := md
	listed.ArtifactType = "application/spdx+json"
	fb, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{listed}})
	fd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(fb), Size: int64(len(fb))}
	if err := reg.Push(t.Context(), "library/referred", "sha256-"+b.Manifest.Digest.Encoded(), fd,
		map[digest.Digest][]byte{fd.Digest: fb, md.Digest: m, cd.Digest: empty, ld.Digest: sbom}); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/library/referred:1"
	seed := filepath.Join(t.TempDir(), "referred.tar")
	mustSave(t, namespace(t), "--plain-http", "-o", seed, ref)
	var idx ocispec.Index
	json.Unmarshal([]byte(testutil.TarFiles(t, mustRead(t, seed))["index.json"]), &idx)
	found := false
	for _, e := range idx.Manifests {
		found = found || (e.Digest == md.Digest && e.Annotations["io.containerd.manifest.subject"] == b.Manifest.Digest.String())
	}
	if !found {
		t.Fatalf("the seed's index %v lacks the referrer %s; registry requests %v", idx.Manifests, md.Digest, reg.Requests())
	}
	if ls := ctrSeedRun(t, namespace(t), "ls", seed); !regexp.MustCompile(`(?m)^\S+ +` + regexp.QuoteMeta(ref) + ` .* 0 +1$`).MatchString(ls.stdout) {
		t.Errorf("ls does not count the image's referrer:\n%s", ls.stdout)
	}
	ns := namespace(t)
	mustImport(t, ns, seed)
	impAssertTargets(t, ns, map[string]digest.Digest{ref: b.Manifest.Digest})
	if out := ctr(t, ns, "content", "ls", "-q"); !strings.Contains(out, md.Digest.String()) || !strings.Contains(out, ld.Digest.String()) {
		t.Errorf("the referrer %s (and its SBOM) not in the content store", md.Digest)
	}
	// push carries it on: by digest beside its image, listed in the
	// fallback tag, so a save from the site registry finds it again.
	site := testregistry.Start(t, testregistry.Options{})
	if r := pushRun(t, "--to", site.Host, "--plain-http", seed); r.code != 0 {
		t.Fatalf("push: exit %d: %s", r.code, r.stderr)
	}
	again := filepath.Join(t.TempDir(), "again.tar")
	mustSave(t, namespace(t), "--plain-http", "-o", again, site.Host+"/"+strings.ReplaceAll(reg.Host, ":", "_")+"/library/referred:1")
	if !strings.Contains(testutil.TarFiles(t, mustRead(t, again))["index.json"], md.Digest.String()) {
		t.Errorf("the site registry's copy lacks the referrer %s", md.Digest)
	}
	bare := filepath.Join(t.TempDir(), "bare.tar")
	mustSave(t, namespace(t), "--plain-http", "--no-referrers", "-o", bare, ref)
	if strings.Contains(testutil.TarFiles(t, mustRead(t, bare))["index.json"], md.Digest.String()) {
		t.Errorf("--no-referrers saved the referrer")
	}
}

// A multi-platform image is verified by the index digest cosign signed,
// though only the host's platform is saved and imported.
func TestVerifyMultiPlatform(t *testing.T) {
	sl := newSignedLayouts(t)
	idx, blobs, _, _ := pullIndex(t, "verify-multi")
	if err := sl.reg.Push(t.Context(), "library/multi", "1", idx, blobs); err != nil {
		t.Fatal(err)
	}
	harness.CosignRun(t, sl.work, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "-y",
		sl.reg.Host+"/library/multi@"+idx.Digest.String())
	ref := sl.reg.Host + "/library/multi:1"
	seed := filepath.Join(t.TempDir(), "multi.tar")
	if r := mustSave(t, namespace(t), "--plain-http", "-o", seed, ref); !strings.Contains(r.stdout, ", 1 signature") {
		t.Errorf("save: %q", r.stdout)
	}
	ns := namespace(t)
	mustImport(t, ns, "--verify-key", sl.key("cosign"), seed)
	impAssertTargets(t, ns, map[string]digest.Digest{ref: idx.Digest})
	impAssertUnpacked(t, ns, ref)
}
