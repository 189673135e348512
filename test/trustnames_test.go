package test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageEntry is the cosign save layout's image entry (the one that is no
// signature).
func imageEntry(t *testing.T, dir string) ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	json.Unmarshal(mustRead(t, filepath.Join(dir, "index.json")), &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["kind"] == "dev.cosignproject.cosign/image" {
			return m
		}
	}
	t.Fatalf("no image entry in %s", dir)
	return ocispec.Descriptor{}
}

// nameEntries replaces the layout's index entry of d by one entry of its
// image per annotation set given (the first in its place, the others
// appended): one image under several names.
func nameEntries(t *testing.T, dir string, d digest.Digest, as ...map[string]string) {
	t.Helper()
	e := imageEntry(t, dir)
	editIndex(t, dir, func(idx *ocispec.Index) {
		for i, m := range idx.Manifests {
			if m.Digest == d {
				idx.Manifests[i] = withEntry(e, as[0])
			}
		}
		for _, a := range as[1:] {
			idx.Manifests = append(idx.Manifests, withEntry(e, a))
		}
	})
}

// withEntry is e with its annotations replaced by a.
func withEntry(e ocispec.Descriptor, a map[string]string) ocispec.Descriptor {
	e.Annotations = maps.Clone(a)
	return e
}

// Every name an import records must be covered by the identity of a valid
// signature: a seed carrying a valid signature for one repository cannot
// add other names to the same digest (a second index entry, docker's
// RepoTags, a tag-only entry that --base-name turns into another name).
// Each name refused is one error line naming it; the covered names land.
func TestVerifyEveryName(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/every:1", impHostPlatform(), false, testseed.Gzip)
	name := sl.reg.Host + "/library/every:1"
	repo := sl.reg.Host + "/library/every"
	const forged = "docker.io/library/nginx:latest"
	d := signed.Manifest.Digest
	keyA := sl.key("cosign")
	layout := func(t *testing.T) string { return sl.save(t, "library/every", signed, "cosign", "") }

	// refusedLine: exactly one error line, naming the seed, the name
	// (quoted) and the digest, and saying cause.
	refusedLine := func(t *testing.T, r result, seed, refused, cause string) {
		t.Helper()
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 {
			t.Fatalf("exit %d, stderr %q; want 1 and one error line", r.code, r.stderr)
		}
		for _, want := range []string{seed, strconv.Quote(refused), d.String(), cause} {
			if !strings.Contains(el[0], want) {
				t.Errorf("error line %q lacks %q", el[0], want)
			}
		}
	}

	t.Run("second-entry", func(t *testing.T) {
		dir := layout(t)
		nameEntries(t, dir, d, map[string]string{"io.containerd.image.name": name}, map[string]string{"io.containerd.image.name": forged})
		ns := namespace(t)
		r := ctrSeedRun(t, ns, "import", "--digest-refs", "--verify-key", keyA, dir)
		refusedLine(t, r, dir, forged, "identity "+repo+", want docker.io/library/nginx")
		// The signed name lands, with its digest ref; nothing by the
		// forged name's repository.
		impAssertTargets(t, ns, map[string]digest.Digest{name: d, repo + "@" + d.String(): d})
		impAssertUnpacked(t, ns, name)
		if !strings.Contains(r.stdout, "imported "+name) {
			t.Errorf("no imported line for %s: %q", name, r.stdout)
		}
		// --verify-ignore-identity: every name, as before.
		ns = namespace(t) + "-ignored"
		mustImport(t, ns, "--verify-key", keyA, "--verify-ignore-identity", dir)
		impAssertTargets(t, ns, map[string]digest.Digest{name: d, forged: d})
	})
	t.Run("repotags", func(t *testing.T) {
		// A layout docker 25+ wrote: its index names nothing, manifest.json's
		// RepoTags name the image, a forged one among them.
		dir := layout(t)
		mf, _ := json.Marshal([]map[string]any{{"Config": "blobs/sha256/" + signed.Config.Digest.Encoded(),
			"RepoTags": []string{name, forged}, "Layers": []string{}}})
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mf, 0o644); err != nil {
			t.Fatal(err)
		}
		ns := namespace(t)
		r := ctrSeedRun(t, ns, "import", "--verify-key", keyA, dir)
		refusedLine(t, r, dir, forged, "identity "+repo+", want docker.io/library/nginx")
		impAssertTargets(t, ns, map[string]digest.Digest{name: d})
	})
	t.Run("digests", func(t *testing.T) {
		// Names by digest are names too: import-<date>@D is in no signed
		// repository; BASE@D is when --base-name is the signed one.
		byDate := "import-" + time.Now().Format("2006-01-02") + "@" + d.String()
		dir := layout(t) // cosign's layout: its entries name nothing
		ns := namespace(t)
		r := ctrSeedRun(t, ns, "import", "--verify-key", keyA, dir)
		refusedLine(t, r, dir, byDate, "the seed names the image not: identity "+repo+", want docker.io/library/import-")
		if imgs := imageMap(t, ns); len(imgs) != 0 {
			t.Errorf("records left: %v", keys(imgs))
		}
		ns = namespace(t) + "-base"
		mustImport(t, ns, "--base-name", repo, "--verify-key", keyA, dir)
		impAssertTargets(t, ns, map[string]digest.Digest{repo + "@" + d.String(): d})
		// A named image given a digest name too (ctr's
		// --skip-digest-for-named, whose meaning is inverted as ctr's is).
		named := sl.save(t, "library/every", signed, "cosign", name)
		ns = namespace(t) + "-named"
		r = ctrSeedRun(t, ns, "import", "--digests", "--skip-digest-for-named", "--verify-key", keyA, named)
		refusedLine(t, r, named, byDate, "identity "+repo+", want docker.io/library/import-")
		impAssertTargets(t, ns, map[string]digest.Digest{name: d})
	})
	t.Run("base-name", func(t *testing.T) {
		// The signed name first (so it was the one checked), then a tag
		// alone that --base-name turns into another repository's name,
		// while filtering the signed name out.
		dir := layout(t)
		nameEntries(t, dir, d, map[string]string{"io.containerd.image.name": name}, map[string]string{ocispec.AnnotationRefName: "latest"})
		ns := namespace(t)
		r := ctrSeedRun(t, ns, "import", "--base-name", "docker.io/library/nginx", "--verify-key", keyA, dir)
		refusedLine(t, r, dir, forged, "identity "+repo+", want docker.io/library/nginx")
		if imgs := imageMap(t, ns); len(imgs) != 0 {
			t.Errorf("records left: %v", keys(imgs))
		}
		assertNothingLeft(t, ns)
	})
}

// A name pinned to a digest (REPO@sha256:X) on an entry whose descriptor is
// another digest is refused, with or without signatures, in one line; the
// entry's other names land. ctr records such a name.
func TestPinnedNameOtherDigest(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/pinned:1", impHostPlatform(), false, testseed.Gzip)
	name := sl.reg.Host + "/library/pinned:1"
	other := digest.FromString(t.Name())
	pinned := sl.reg.Host + "/library/pinned@" + other.String()
	d := signed.Manifest.Digest
	dir := sl.save(t, "library/pinned", signed, "cosign", "")
	nameEntries(t, dir, d, map[string]string{"io.containerd.image.name": name}, map[string]string{"io.containerd.image.name": pinned})
	for _, args := range [][]string{nil, {"--verify-key", sl.key("cosign")}} {
		ns := namespace(t) + strconv.Itoa(len(args))
		r := ctrSeedRun(t, ns, append(append([]string{"import"}, args...), dir)...)
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 {
			t.Fatalf("%v: exit %d, stderr %q; want 1 and one error line", args, r.code, r.stderr)
		}
		for _, want := range []string{dir, strconv.Quote(pinned), d.String(), "pins " + other.String()} {
			if !strings.Contains(el[0], want) {
				t.Errorf("%v: error line %q lacks %q", args, el[0], want)
			}
		}
		impAssertTargets(t, ns, map[string]digest.Digest{name: d})
	}
}

// An image named only by a full org.opencontainers.image.ref.name (what
// skopeo copy … oci-archive:FILE:REF writes) is recorded under it, and
// --verify-key checks the signature's identity against that name.
func TestVerifyRefName(t *testing.T) {
	sl := newSignedLayouts(t)
	signed := uniqueImage(t, "registry.local/verify/refname:1", impHostPlatform(), false, testseed.Gzip)
	d := signed.Manifest.Digest
	name := sl.reg.Host + "/library/refname:1"
	for _, tc := range []struct{ refName, err string }{
		{name, ""},
		{sl.reg.Host + "/library/renamed:1", "identity " + sl.reg.Host + "/library/refname, want " + sl.reg.Host + "/library/renamed"},
	} {
		dir := sl.save(t, "library/refname", signed, "cosign", "")
		nameEntries(t, dir, d, map[string]string{ocispec.AnnotationRefName: tc.refName})
		ns := namespace(t) + strconv.Itoa(len(tc.err))
		r := ctrSeedRun(t, ns, "import", "--verify-key", sl.key("cosign"), dir)
		if tc.err == "" {
			if r.code != 0 {
				t.Errorf("%s: exit %d: %s", tc.refName, r.code, r.stderr)
			}
			impAssertTargets(t, ns, map[string]digest.Digest{name: d})
			continue
		}
		if el := impErrorLines(t, r.stderr, ""); r.code != 1 || len(el) != 1 || !strings.Contains(el[0], tc.err) {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", tc.refName, r.code, r.stderr, tc.err)
		}
		if imgs := imageMap(t, ns); len(imgs) != 0 {
			t.Errorf("records left: %v", keys(imgs))
		}
	}
}
