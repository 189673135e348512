package test

import (
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ---- helpers shared by import_test.go and badinput_test.go ----

// impHostPlatform is what ctr-seed imports and unpacks by default; other is a
// platform it does not.
func impHostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func impOtherPlatform() ocispec.Platform {
	if runtime.GOARCH == "arm64" {
		return amd64
	}
	return arm64
}

// impUniqueLayers is testseed.Standard plus one layer per tag, each unique to
// the test, so images built with the same first tag share a unique layer
// (docker save then links it) that no other test has put in the daemon.
func impUniqueLayers(t *testing.T, name string, p ocispec.Platform, docker bool, c testseed.Compression, tags ...string) *testseed.Built {
	t.Helper()
	img := testseed.Standard(name, p, docker, c)
	for _, tag := range tags {
		img.Layers = append(img.Layers, testseed.Layer{Compression: c, Files: []testseed.File{
			{Name: "etc/unique-" + tag, Content: []byte(t.Name() + " " + tag + " " + p.Architecture)},
		}})
	}
	b := testutil.Build(t, img)
	return b
}

// impTargets lists ns's images as name → target digest.
func impTargets(t *testing.T, ns string) map[string]digest.Digest {
	t.Helper()
	return harness.ImageTargets(t, dclient(t), ns)
}

func impAssertTargets(t *testing.T, ns string, want map[string]digest.Digest) {
	t.Helper()
	if got := impTargets(t, ns); !maps.Equal(got, want) {
		t.Errorf("images in %s:\n got  %v\n want %v", ns, got, want)
	}
}

// impAssertUnpacked checks each image exists and is unpacked into overlayfs.
func impAssertUnpacked(t *testing.T, ns string, names ...string) {
	t.Helper()
	c, ctx := dclient(t), nsCtx(ns)
	for _, n := range names {
		img, err := c.GetImage(ctx, n)
		if err != nil {
			t.Errorf("image %s: %v", n, err)
			continue
		}
		ok, err := img.IsUnpacked(ctx, "overlayfs")
		if err != nil || !ok {
			t.Errorf("image %s: unpacked = %v, %v", n, ok, err)
		}
	}
}

// impSeedLeases lists the leases ctr-seed created in ns.
func impSeedLeases(t *testing.T, ns string) []leases.Lease {
	t.Helper()
	return harness.SeedLeases(t, dclient(t), ns)
}

// impSummary is one "imported NAMES DIGEST: X from seed, Y from registry, Ts" line.
type impSummary struct {
	names             []string
	target            digest.Digest
	fromSeed, fromReg string
	seconds           string
}

var (
	impSummaryRE = harness.SummaryRE
	impWroteRE   = harness.WroteRE
)

// impParseStdout splits ctr-seed import's (non-TTY) stdout into wrote lines
// and summaries; any other line fails the test.
func impParseStdout(t *testing.T, stdout string) (wrote []string, sums []impSummary) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if l == "" {
			continue
		}
		if impWroteRE.MatchString(l) {
			wrote = append(wrote, l)
			continue
		}
		m := impSummaryRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("unexpected stdout line %q", l)
			continue
		}
		if m[1] != "imported" {
			t.Errorf("summary %q: want imported", l)
		}
		sums = append(sums, impSummary{names: strings.Split(m[2], ","), target: digest.Digest(m[3]), fromSeed: m[4], fromReg: m[5], seconds: m[7]})
	}
	return wrote, sums
}

var impLines = testutil.Lines

func impOciSeedOf(t *testing.T, named ...*testseed.Built) *testseed.Seed {
	t.Helper()
	var s testseed.Seed
	for _, b := range named {
		s.Add(b.Name, b.Manifest, b.Blobs)
	}
	return &s
}

// ---- 1. formats ----

func TestImportFormats(t *testing.T) {
	oci := func(c testseed.Compression, dir bool) func(t *testing.T) (string, map[string]digest.Digest, []*testseed.Built) {
		return func(t *testing.T) (string, map[string]digest.Digest, []*testseed.Built) {
			a := uniqueImage(t, "registry.local/formats/a:1", impHostPlatform(), false, testseed.Gzip)
			b := uniqueImage(t, "docker.io/library/formats-b:2", impHostPlatform(), false, testseed.Zstd)
			s := impOciSeedOf(t, a, b)
			want := map[string]digest.Digest{a.Name: a.Manifest.Digest, b.Name: b.Manifest.Digest}
			if dir {
				p := filepath.Join(t.TempDir(), "layout")
				if err := s.WriteOCIDir(p); err != nil {
					t.Fatal(err)
				}
				return p, want, nil
			}
			return writeOCI(t, s, c), want, nil
		}
	}
	docker := func(c testseed.Compression, symlinks bool) func(t *testing.T) (string, map[string]digest.Digest, []*testseed.Built) {
		return func(t *testing.T) (string, map[string]digest.Digest, []*testseed.Built) {
			// Both images share the layer "shared", unique to the test:
			// with symlinks the second one's copy is a link to the first.
			a := impUniqueLayers(t, "", impHostPlatform(), true, testseed.Uncompressed, "shared", "a")
			b := impUniqueLayers(t, "", impHostPlatform(), true, testseed.Uncompressed, "shared", "b")
			p := writeDocker(t, []testseed.DockerImage{
				{RepoTags: []string{"formats-a:1", "registry.local/formats/a:latest"}, Built: a, SymlinkLayers: symlinks},
				{RepoTags: []string{"registry.local/formats/b:2"}, Built: b, SymlinkLayers: symlinks},
			}, c)
			// docker save targets are synthesized schema2 manifests:
			// checked by content below, the map holds only names.
			return p, map[string]digest.Digest{
				"docker.io/library/formats-a:1":   "",
				"registry.local/formats/a:latest": "",
				"registry.local/formats/b:2":      "",
			}, []*testseed.Built{a, a, b}
		}
	}
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) (string, map[string]digest.Digest, []*testseed.Built)
	}{
		{"oci-tar", oci(testseed.Uncompressed, false)},
		{"oci-tar-gzip", oci(testseed.Gzip, false)},
		{"oci-tar-zstd", oci(testseed.Zstd, false)},
		{"oci-dir", oci(testseed.Uncompressed, true)},
		{"docker-tar", docker(testseed.Uncompressed, false)},
		{"docker-tar-symlinks", docker(testseed.Uncompressed, true)},
		{"docker-tar-gzip", docker(testseed.Gzip, true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			seed, want, dockerBuilt := tc.mk(t)
			r := mustImport(t, ns, seed)
			wrote, sums := impParseStdout(t, r.stdout)
			if len(wrote) == 0 || len(sums) == 0 {
				t.Errorf("stdout lacks wrote/summary lines:\n%s", r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			got := impTargets(t, ns)
			if dockerBuilt == nil {
				impAssertTargets(t, ns, want)
			} else {
				if !slices.Equal(keys(got), keys(want)) {
					t.Fatalf("images: got %v, want names %v", got, keys(want))
				}
				if got["docker.io/library/formats-a:1"] != got["registry.local/formats/a:latest"] {
					t.Errorf("two tags of one image, two targets: %v", got)
				}
				names := []string{"docker.io/library/formats-a:1", "registry.local/formats/a:latest", "registry.local/formats/b:2"}
				for i, n := range names {
					impCheckDockerTarget(t, ns, n, dockerBuilt[i])
				}
			}
			impAssertUnpacked(t, ns, keys(want)...)
			if ls := impSeedLeases(t, ns); len(ls) != 0 {
				t.Errorf("leases left: %v", ls)
			}
		})
	}
}

// impCheckDockerTarget checks that a docker save image's record points at a
// Docker schema2 manifest of b's config and b's uncompressed layers.
func impCheckDockerTarget(t *testing.T, ns, name string, b *testseed.Built) {
	t.Helper()
	ctx := nsCtx(ns)
	img, err := dclient(t).ImageService().Get(ctx, name)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if img.Target.MediaType != images.MediaTypeDockerSchema2Manifest {
		t.Errorf("%s: target media type %s", name, img.Target.MediaType)
	}
	p, err := content.ReadBlob(ctx, dclient(t).ContentStore(), img.Target)
	if err != nil {
		t.Errorf("%s: manifest: %v", name, err)
		return
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != b.Config.Digest {
		t.Errorf("%s: config %s, want %s", name, m.Config.Digest, b.Config.Digest)
	}
	var layers []digest.Digest
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
		if l.MediaType != images.MediaTypeDockerSchema2Layer {
			t.Errorf("%s: layer %s media type %s", name, l.Digest, l.MediaType)
		}
	}
	if !slices.Equal(layers, b.DiffIDs) {
		t.Errorf("%s: layers %v, want the diffIDs %v", name, layers, b.DiffIDs)
	}
}

// ---- 2. the unpacked filesystem: unpacked_test.go ----

// ---- 3. seeds written by skopeo ----

func TestImportSkopeoSeeds(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo is required (apt-get install skopeo): %v", err)
	}
	for _, transport := range []string{"docker-archive", "oci-archive", "oci"} {
		t.Run(transport, func(t *testing.T) {
			name := "registry.local/skopeo/" + transport + ":1.0"
			b := uniqueImage(t, name, impHostPlatform(), false, testseed.Gzip)
			dir := filepath.Join(t.TempDir(), "layout")
			if err := impOciSeedOf(t, b).WriteOCIDir(dir); err != nil {
				t.Fatal(err)
			}
			seed := filepath.Join(t.TempDir(), "skopeo.tar")
			out, err := exec.Command(skopeo, "--insecure-policy", "copy", "-q",
				"oci:"+dir+":1.0", transport+":"+seed+":"+name).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo copy: %v\n%s", err, out)
			}
			nsCtr, nsSeed := namespace(t)+"-ctr", namespace(t)+"-seed"
			ctrSeed := seed
			if transport == "oci" {
				// ctr reads a layout tarred only: the same layout, tarred.
				ctrSeed = seed + ".tar"
				if out, err := exec.Command("tar", "-C", seed, "-cf", ctrSeed, ".").CombinedOutput(); err != nil {
					t.Fatalf("tar: %v\n%s", err, out)
				}
			}
			ctr(t, nsCtr, "images", "import", ctrSeed)
			mustImport(t, nsSeed, seed)
			want, got := impTargets(t, nsCtr), impTargets(t, nsSeed)
			if len(want) == 0 {
				t.Fatal("ctr imported nothing: the case proves nothing")
			}
			if !maps.Equal(got, want) {
				t.Errorf("ctr-seed %v, ctr %v", got, want)
			}
			if _, ok := got[name]; !ok {
				t.Errorf("no image %s in %v", name, got)
			}
			if transport != "docker-archive" && got[name] != b.Manifest.Digest {
				t.Errorf("oci-archive target %s, testseed's manifest %s", got[name], b.Manifest.Digest)
			}
			impAssertUnpacked(t, nsSeed, name)
			if w, g := snapshotChain(t, nsCtr), snapshotChain(t, nsSeed); !slices.Equal(w, g) {
				t.Errorf("snapshots: ctr %v, ctr-seed %v", w, g)
			}
		})
	}
}

// ---- 4. multi-platform index ----

func TestImportAllPlatforms(t *testing.T) {
	for _, all := range []bool{true, false} {
		name := map[bool]string{true: "all-platforms", false: "host-only"}[all]
		t.Run(name, func(t *testing.T) {
			ns := namespace(t)
			host := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
			other := uniqueImage(t, "", impOtherPlatform(), false, testseed.Gzip)
			idx, blobs, err := indexFromBuilt(host, other)
			if err != nil {
				t.Fatal(err)
			}
			var s testseed.Seed
			ref := "registry.local/multi/" + name + ":1"
			s.Add(ref, idx, blobs)
			args := []string{writeOCI(t, &s, testseed.Uncompressed)}
			if all {
				args = append([]string{"--all-platforms"}, args...)
			}
			mustImport(t, ns, args...)
			impAssertTargets(t, ns, map[string]digest.Digest{ref: idx.Digest})
			impAssertUnpacked(t, ns, ref)

			cs, ctx := dclient(t).ContentStore(), nsCtx(ns)
			// The blobs unique to each child: manifest, config, top layer.
			unique := func(b *testseed.Built) []digest.Digest {
				return []digest.Digest{b.Manifest.Digest, b.Config.Digest, b.Layers[len(b.Layers)-1].Digest}
			}
			for _, d := range append([]digest.Digest{idx.Digest}, unique(host)...) {
				if _, err := cs.Info(ctx, d); err != nil {
					t.Errorf("host blob %s: %v", d, err)
				}
			}
			for _, d := range unique(other) {
				_, err := cs.Info(ctx, d)
				switch {
				case all && err != nil:
					t.Errorf("--all-platforms: %s blob %s: %v", impOtherPlatform().Architecture, d, err)
				case !all && !errdefs.IsNotFound(err):
					t.Errorf("host only: %s blob %s is in the store (err %v)", impOtherPlatform().Architecture, d, err)
				}
			}
		})
	}
}

// ---- 5. tag-only entries and --base-name ----

func TestImportTagOnlyBaseName(t *testing.T) {
	ns := namespace(t)
	tagged := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
	inBase := uniqueImage(t, "registry.local/app:v4", impHostPlatform(), false, testseed.Gzip)
	otherFull := uniqueImage(t, "other.local/x:1", impHostPlatform(), false, testseed.Gzip)
	otherRef := uniqueImage(t, "", impHostPlatform(), false, testseed.Zstd)
	var s testseed.Seed
	s.AddRaw(tagged.Manifest, map[string]string{ocispec.AnnotationRefName: "v3"}, tagged.Blobs)
	s.Add(inBase.Name, inBase.Manifest, inBase.Blobs)
	s.Add(otherFull.Name, otherFull.Manifest, otherFull.Blobs)                                                   // image.name outside the base
	s.AddRaw(otherRef.Manifest, map[string]string{ocispec.AnnotationRefName: "other.local/y:2"}, otherRef.Blobs) // full ref.name outside the base
	seed := writeOCI(t, &s, testseed.Uncompressed)

	mustImport(t, ns, "--base-name", "registry.local/app", seed)
	want := map[string]digest.Digest{
		"registry.local/app:v3": tagged.Manifest.Digest,
		"registry.local/app:v4": inBase.Manifest.Digest,
	}
	impAssertTargets(t, ns, want)
	impAssertUnpacked(t, ns, keys(want)...)

	// And that is what ctr does with the same seed and flag.
	nsCtr := ns + "-ctr"
	ctr(t, nsCtr, "images", "import", "--base-name", "registry.local/app", seed)
	impAssertTargets(t, nsCtr, want)
}

// ---- 6. re-import ----

func TestReimportIsFree(t *testing.T) {
	ns := namespace(t)
	a := uniqueImage(t, "registry.local/again/a:1", impHostPlatform(), false, testseed.Gzip)
	b := uniqueImage(t, "registry.local/again/b:1", impHostPlatform(), true, testseed.Zstd)
	seed := writeOCI(t, impOciSeedOf(t, a, b), testseed.Gzip)

	r1 := mustImport(t, ns, seed)
	wrote1, sums1 := impParseStdout(t, r1.stdout)
	if len(wrote1) == 0 || len(sums1) != 2 {
		t.Fatalf("first import: %d wrote lines, %d summaries:\n%s", len(wrote1), len(sums1), r1.stdout)
	}
	for _, s := range sums1 {
		if s.fromSeed == "0 B" {
			t.Errorf("first import of %v read nothing from the seed", s.names)
		}
	}
	imgs1, chain1 := imageMap(t, ns), snapshotChain(t, ns)
	if len(chain1) == 0 {
		t.Fatal("no snapshots after the first import")
	}

	stop := harness.EventTopics(t, dclient(t), ns)
	r2 := mustImport(t, ns, seed)
	// Nothing changed, so nothing is written: no record updated, no
	// snapshot prepared (containerd publishes an event for each).
	if topics := stop(); len(topics) != 0 {
		t.Errorf("the re-import changed something: events %v", topics)
	}
	wrote2, sums2 := impParseStdout(t, r2.stdout)
	if len(wrote2) != 0 {
		t.Errorf("second import wrote blobs: %q", wrote2)
	}
	if len(sums2) != 2 {
		t.Fatalf("second import: %d summaries:\n%s", len(sums2), r2.stdout)
	}
	for _, s := range sums2 {
		if s.fromSeed != "0 B" || s.fromReg != "" {
			t.Errorf("second import of %v: %s from seed, %s from registry", s.names, s.fromSeed, s.fromReg)
		}
	}
	if r2.stderr != "" {
		t.Errorf("stderr: %s", r2.stderr)
	}
	imgs2, chain2 := imageMap(t, ns), snapshotChain(t, ns)
	if !slices.Equal(keys(imgs1), keys(imgs2)) {
		t.Errorf("images %v, then %v", keys(imgs1), keys(imgs2))
	}
	for n, i1 := range imgs1 {
		i2 := imgs2[n]
		if i1.Target.Digest != i2.Target.Digest || i1.Target.MediaType != i2.Target.MediaType || i1.Target.Size != i2.Target.Size ||
			!maps.Equal(i1.Labels, i2.Labels) || !i1.CreatedAt.Equal(i2.CreatedAt) || !i1.UpdatedAt.Equal(i2.UpdatedAt) {
			t.Errorf("%s changed:\n %+v\n %+v", n, i1, i2)
		}
	}
	if !slices.Equal(chain1, chain2) {
		t.Errorf("snapshots changed:\n %v\n %v", chain1, chain2)
	}
	if ls := impSeedLeases(t, ns); len(ls) != 0 {
		t.Errorf("leases left: %v", ls)
	}
}

// ---- 7. labels ----

func TestImportLabels(t *testing.T) {
	for _, tc := range []struct {
		name, ns string
		cri      bool
	}{
		{"cri", "k8s.io", true},
		{"plain", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.ns
			if ns == "" {
				ns = namespace(t)
			}
			repo := "library/labels-" + tc.name
			b := uniqueImage(t, "docker.io/"+repo+":1", impHostPlatform(), false, testseed.Gzip)
			if tc.cri {
				// k8s.io is shared: remove exactly what this test made.
				t.Cleanup(func() {
					if err := dclient(t).ImageService().Delete(nsCtx(ns), b.Name, images.SynchronousDelete()); err != nil {
						t.Errorf("cleanup: %v", err)
					}
				})
			}
			mustImport(t, ns, "--label", "a=b", "--pin", writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed))
			img, err := dclient(t).ImageService().Get(nsCtx(ns), b.Name)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"a": "b", "io.cri-containerd.pinned": "pinned", "io.ctr-seed.seed": "seed.tar"}
			if tc.cri {
				want["io.cri-containerd.image"] = "managed"
			}
			if v := img.Labels["io.ctr-seed.seed.version"]; !strings.HasPrefix(v, "sha256:") {
				t.Errorf("io.ctr-seed.seed.version = %q; want the seed's index digest", v)
			}
			delete(img.Labels, "io.ctr-seed.seed.version")
			if !maps.Equal(img.Labels, want) {
				t.Errorf("labels %v, want %v", img.Labels, want)
			}
			impAssertUnpacked(t, ns, b.Name)

			cs, ctx := dclient(t).ContentStore(), nsCtx(ns)
			for _, d := range append([]ocispec.Descriptor{b.Manifest, b.Config}, b.Layers...) {
				info, err := cs.Info(ctx, d.Digest)
				if err != nil {
					t.Errorf("blob %s: %v", d.Digest, err)
					continue
				}
				if got := info.Labels["containerd.io/distribution.source.docker.io"]; got != repo {
					t.Errorf("blob %s (%s): distribution source %q, want %q", d.Digest, d.MediaType, got, repo)
				}
			}
		})
	}
}
