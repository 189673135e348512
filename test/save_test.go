package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// saveRun runs `ctr-seed save args...` against the test daemon.
func saveRun(t *testing.T, ns string, args ...string) result {
	t.Helper()
	return runCtrSeed(t, harness.Cmd{
		Argv: append([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "save"}, args...),
		Env:  []string{"DOCKER_CONFIG=" + t.TempDir()},
	})
}

func mustSave(t *testing.T, ns string, args ...string) result {
	t.Helper()
	r := saveRun(t, ns, args...)
	if r.code != 0 {
		t.Fatalf("ctr-seed save %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// A seed saved from a registry is read by ctr images import (names and
// digests the registry's) and by skopeo; saving again gives the same
// bytes; the registry served every blob once at most.
func TestSaveFromRegistry(t *testing.T) {
	idx, blobs, a, _ := pullIndex(t, "save-reg")
	reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", idx, blobs)
	ref := reg.Host + "/library/app:1"
	out := filepath.Join(t.TempDir(), "app.tar")
	r := mustSave(t, namespace(t), "--plain-http", "-o", out, ref)
	// Piped: a "wrote" line for each blob copied (the host platform's
	// config and layers, from the registry), then the summary.
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := map[string]bool{}
	for _, d := range append([]ocispec.Descriptor{a.Config}, a.Layers...) {
		want[d.Digest.String()[:19]] = true
	}
	for _, l := range lines[:len(lines)-1] {
		m := harness.WroteRE.FindStringSubmatch(l)
		if m == nil || !want[m[1]] || m[3] != "registry" {
			t.Errorf("line %q: want a wrote line from the registry for one of %v", l, keys(want))
			continue
		}
		delete(want, m[1])
	}
	if len(want) > 0 || !strings.HasPrefix(lines[len(lines)-1], "saved "+out+": 1 images, ") {
		t.Errorf("no wrote line for %v; stdout %q", keys(want), r.stdout)
	}
	gets := reg.BlobGets()
	seen := map[digest.Digest]bool{}
	for _, d := range gets {
		if seen[d] {
			t.Errorf("blob %s fetched twice", d)
		}
		seen[d] = true
	}
	if q := mustSave(t, namespace(t), "--plain-http", "-q", "-o", filepath.Join(t.TempDir(), "q.tar"), ref); q.stdout != "" {
		t.Errorf("save -q printed %q", q.stdout)
	}
	// Deterministic: a second save is byte-identical.
	again := filepath.Join(t.TempDir(), "again.tar")
	mustSave(t, namespace(t), "--plain-http", "-o", again, ref)
	b1, _ := os.ReadFile(out)
	b2, _ := os.ReadFile(again)
	if !bytes.Equal(b1, b2) {
		t.Errorf("two saves differ (%d and %d bytes)", len(b1), len(b2))
	}
	// ctr reads it: the index digest and the name are the registry's.
	ns := namespace(t) + "-ctr"
	ctr(t, ns, "images", "import", out)
	if img, ok := imageMap(t, ns)[ref]; !ok || img.Target.Digest != idx.Digest {
		t.Errorf("ctr images import of the saved seed: %v; want %s → %s", keys(imageMap(t, ns)), ref, idx.Digest)
	}
	// and so does ctr-seed, unpacking the host's platform.
	ns2 := namespace(t) + "-seed"
	mustImport(t, ns2, out)
	impAssertUnpacked(t, ns2, ref)
	// Compressed as a whole: the same bytes each time, read by ctr (gzip)
	// and ctr-seed (zstd).
	for _, c := range []string{"gzip", "zstd"} {
		c1, c2 := filepath.Join(t.TempDir(), "a."+c), filepath.Join(t.TempDir(), "b."+c)
		mustSave(t, namespace(t), "--plain-http", "--compress", c, "-o", c1, ref)
		mustSave(t, namespace(t), "--plain-http", "--compress", c, "-o", c2, ref)
		x1, _ := os.ReadFile(c1)
		x2, _ := os.ReadFile(c2)
		if !bytes.Equal(x1, x2) || len(x1) >= len(b1) {
			t.Errorf("--compress %s: %d and %d bytes (whole: %d); want equal and smaller", c, len(x1), len(x2), len(b1))
		}
		cns := namespace(t) + "-" + c
		if c == "gzip" {
			ctr(t, cns, "images", "import", c1)
		} else {
			mustImport(t, cns, c1)
			// and by ctr, decompressed by the zstd CLI on the way in.
			zns := cns + "-ctr"
			pipe := exec.Command("sh", "-c", `zstd -dc "$1" | "$2" --address "$3" -n "$4" images import -`, "sh", c1, daemon.Bins.Ctr, daemon.Address, zns)
			if b, err := pipe.CombinedOutput(); err != nil {
				t.Errorf("zstd -dc | ctr images import -: %v\n%s", err, b)
			}
			if img, ok := imageMap(t, zns)[ref]; !ok || img.Target.Digest != idx.Digest {
				t.Errorf("zstd -dc | ctr images import -: imported %v", keys(imageMap(t, zns)))
			}
		}
		if img, ok := imageMap(t, cns)[ref]; !ok || img.Target.Digest != idx.Digest {
			t.Errorf("--compress %s: imported %v", c, keys(imageMap(t, cns)))
		}
	}
	// A delta against the node that imported it asks the registry for none
	// of the layers it leaves out.
	inv := filepath.Join(t.TempDir(), "node.json")
	if r := ctrSeedRun(t, ns2, "inventory", "-o", inv); r.code != 0 {
		t.Fatalf("inventory: %s", r.stderr)
	}
	reg.Reset()
	delta := filepath.Join(t.TempDir(), "delta.tar")
	r = mustSave(t, ns2, "--plain-http", "--have", inv, "-o", delta, ref)
	if !strings.Contains(r.stdout, fmt.Sprintf("left out %d layers", len(a.Layers))) {
		t.Errorf("delta save: %q; want %d layers left out", r.stdout, len(a.Layers))
	}
	for _, d := range reg.BlobGets() {
		if slices.ContainsFunc(a.Layers, func(l ocispec.Descriptor) bool { return l.Digest == d }) {
			t.Errorf("a delta save fetched layer %s, which it leaves out", d)
		}
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatalf("skopeo is needed (.ci/run installs it): %v", err)
	}
	outb, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+out+":1").CombinedOutput()
	if err != nil || digest.FromBytes(bytes.TrimSpace(outb)) != idx.Digest && digest.FromBytes(outb) != idx.Digest {
		t.Errorf("skopeo inspect: %v: %.200s", err, outb)
	}
}

// Each source alone: --seed with --offline, and --from-containerd.
func TestSaveSources(t *testing.T) {
	b := uniqueImage(t, "registry.local/save/src:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Gzip)
	t.Run("seed-offline", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "from-seed.tar")
		mustSave(t, namespace(t), "--offline", "--seed", seed, "-o", out, b.Name)
		ns := namespace(t)
		mustImport(t, ns, out)
		impAssertTargets(t, ns, map[string]digest.Digest{b.Name: b.Manifest.Digest})
	})
	t.Run("from-containerd", func(t *testing.T) {
		src := namespace(t)
		mustImport(t, src, seed)
		out := filepath.Join(t.TempDir(), "from-containerd.tar")
		mustSave(t, src, "--offline", "--from-containerd", "-o", out, b.Name)
		ns := namespace(t) + "-again"
		mustImport(t, ns, out)
		impAssertTargets(t, ns, map[string]digest.Digest{b.Name: b.Manifest.Digest})
	})
	t.Run("unknown-ref", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "none.tar")
		r := saveRun(t, namespace(t), "--offline", "--seed", seed, "-o", out, "registry.local/save/absent:1")
		if r.code != 1 || !strings.Contains(r.stderr, "registry.local/save/absent:1") {
			t.Errorf("exit %d, stderr %q; want 1 naming the reference", r.code, r.stderr)
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(m) != 0 {
			t.Errorf("a failed save left %v", m)
		}
	})
}

// A delta seed against a node's inventory carries only what the node
// lacks; imported there it lands complete and unpacked, the same snapshot
// chain as from a full seed; on a node without the base it is refused,
// one line, nothing left. With two inventories only what both hold is
// left out.
func TestSaveDelta(t *testing.T) {
	// v2: v1's layers plus one of its own.
	v1, v2 := testutil.DeltaImages(t, "registry.local/save/app:1", "registry.local/save/app:2", impHostPlatform())
	shared := 0
	for _, l := range v2.Layers {
		if slices.ContainsFunc(v1.Layers, func(d ocispec.Descriptor) bool { return d.Digest == l.Digest }) {
			shared++
		}
	}
	if shared != len(v1.Layers) {
		t.Fatalf("fixture: v2 shares %d of v1's %d layers", shared, len(v1.Layers))
	}
	node := namespace(t)
	mustImport(t, node, writeOCI(t, impOciSeedOf(t, v1), testseed.Uncompressed))
	inv := filepath.Join(t.TempDir(), "node.json")
	if r := ctrSeedRun(t, node, "inventory", "--node", "edge-1", "-o", inv); r.code != 0 {
		t.Fatalf("inventory: %s", r.stderr)
	}
	var doc struct {
		Version int
		Node    string
		Blobs   []struct{ Digest digest.Digest }
	}
	b, _ := os.ReadFile(inv)
	if err := json.Unmarshal(b, &doc); err != nil || doc.Version != 1 || doc.Node != "edge-1" || len(doc.Blobs) == 0 {
		t.Fatalf("inventory: %v %+v", err, doc)
	}

	full := writeOCI(t, impOciSeedOf(t, v2), testseed.Uncompressed)
	delta := filepath.Join(t.TempDir(), "delta.tar")
	r := mustSave(t, node, "--offline", "--seed", full, "--have", inv, "-o", delta, v2.Name)
	if !strings.Contains(r.stdout, "left out "+strconv.Itoa(len(v1.Layers))+" layers") {
		t.Errorf("stdout %q; want %d layers left out", r.stdout, len(v1.Layers))
	}
	fi, _ := os.Stat(delta)
	var ownBytes int64
	for _, l := range v2.Layers[len(v1.Layers):] {
		ownBytes += l.Size
	}
	if fi.Size() > ownBytes+64<<10 {
		t.Errorf("delta of %d bytes for %d bytes of new layers", fi.Size(), ownBytes)
	}
	if files := tarNames(t, delta); slices.Contains(files, "manifest.json") || !slices.Contains(files, "index.json") {
		t.Errorf("delta seed entries %v: want index.json, and no docker manifest.json (it would name left-out layers)", files)
	}
	if r := ctrSeedRun(t, node, "verify", delta); r.code != 0 || !strings.Contains(r.stdout, "a delta seed") {
		t.Errorf("verify of the delta: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := ctrSeedRun(t, node, "verify", "--node", delta); r.code != 0 {
		t.Errorf("verify --node on the node it was made for: exit %d, %q", r.code, r.stderr)
	}
	if r := ctrSeedRun(t, node, "ls", delta); r.code != 0 || !strings.Contains(r.stdout, "(delta)") {
		t.Errorf("ls of the delta: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	// On the node: complete and unpacked, as from the full seed.
	mustImport(t, node, delta)
	impAssertUnpacked(t, node, v2.Name)
	fullNS := namespace(t) + "-full"
	mustImport(t, fullNS, full)
	if w, g := snapshotChain(t, fullNS), snapshotChain(t, node); !slices.Equal(w, g) {
		t.Errorf("snapshot chains differ:\nfull:  %v\ndelta: %v", w, g)
	}

	// Two inventories: only what both hold is left out. The second claims
	// every layer of v3, whose own layer this daemon never saw.
	v3img := testseed.Standard("registry.local/save/app:3", impHostPlatform(), false, testseed.Gzip)
	v3img.Layers = append(v3img.Layers, testseed.Layer{Compression: testseed.Gzip, Files: []testseed.File{{Name: "app/v3", Content: []byte(t.Name() + " v3")}}})
	v3 := testutil.Build(t, v3img)
	fake := filepath.Join(t.TempDir(), "fake.json")
	var fb struct {
		Version int              `json:"version"`
		Node    string           `json:"node"`
		Blobs   []map[string]any `json:"blobs"`
	}
	fb.Version, fb.Node = 1, "edge-2"
	for _, l := range append(append([]ocispec.Descriptor(nil), v2.Layers...), v3.Layers...) {
		fb.Blobs = append(fb.Blobs, map[string]any{"digest": l.Digest, "size": l.Size})
	}
	fj, _ := json.Marshal(fb)
	os.WriteFile(fake, fj, 0o644)
	both := filepath.Join(t.TempDir(), "both.tar")
	r = mustSave(t, node, "--offline", "--seed", full, "--have", inv, "--have", fake, "-o", both, v2.Name)
	if !strings.Contains(r.stdout, "left out "+strconv.Itoa(len(v1.Layers))+" layers") {
		t.Errorf("two inventories: %q; want %d layers left out", r.stdout, len(v1.Layers))
	}

	// A delta for a node that has v3's own layer, imported where it is
	// missing: refused, one line naming it, nothing left.
	only := filepath.Join(t.TempDir(), "v3-delta.tar")
	mustSave(t, node, "--offline", "--seed", writeOCI(t, impOciSeedOf(t, v3), testseed.Uncompressed), "--have", fake, "-o", only, v3.Name)
	own := v3.Layers[len(v3.Layers)-1].Digest
	gone := namespace(t) + "-gone"
	if r := ctrSeedRun(t, gone, "verify", "--node", only); r.code != 1 || !strings.Contains(r.stderr, own.String()+": left out of this delta seed, and not on this node") {
		t.Errorf("verify --node where a left-out blob is missing: exit %d, %q", r.code, r.stderr)
	}
	r = ctrSeedRun(t, gone, "import", only)
	el := impErrorLines(t, r.stderr, "")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "left out of this delta seed, made for inventory edge-2; not on this node") || !strings.Contains(el[0], own.String()) {
		t.Errorf("delta where a blob is missing: exit %d, stderr %q", r.code, r.stderr)
	}
	assertNothingLeft(t, gone)
}

// save --split writes parts whose concatenation is the unsplit seed; the
// seed imports by its first part or its base name; a missing part is one
// line naming it.
func TestSaveSplit(t *testing.T) {
	b := uniqueImage(t, "registry.local/save/split:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Gzip)
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar")
	mustSave(t, namespace(t), "--offline", "--seed", seed, "-o", whole, b.Name)
	out := filepath.Join(dir, "split.tar")
	r := mustSave(t, namespace(t), "--offline", "--seed", seed, "--split", "1K", "-o", out, b.Name)
	parts, _ := filepath.Glob(out + ".*")
	slices.Sort(parts)
	if len(parts) < 3 || !strings.Contains(r.stdout, "parts: split.tar.001") {
		t.Fatalf("parts %v, stdout %q", parts, r.stdout)
	}
	var cat []byte
	for _, p := range parts {
		b, _ := os.ReadFile(p)
		if len(b) > 1024 {
			t.Errorf("part %s: %d bytes, over 1K", p, len(b))
		}
		cat = append(cat, b...)
	}
	if w, _ := os.ReadFile(whole); !bytes.Equal(cat, w) {
		t.Errorf("the parts (%d bytes) are not the unsplit seed (%d bytes)", len(cat), len(w))
	}
	for _, name := range []string{parts[0], out} {
		ns := namespace(t) + "-" + filepath.Base(name)
		mustImport(t, ns, name)
		impAssertTargets(t, ns, map[string]digest.Digest{b.Name: b.Manifest.Digest})
	}
	os.Remove(parts[1])
	ns := namespace(t) + "-gap"
	r = ctrSeedRun(t, ns, "import", parts[0])
	if el := impErrorLines(t, r.stderr, ""); r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "part "+parts[1]+" is missing") {
		t.Errorf("a missing part: exit %d, stderr %q", r.code, r.stderr)
	}
	assertNothingLeft(t, ns)
}

// tarNames lists the entry names of the tar at p.
func tarNames(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(testutil.TarFiles(t, b)))
}

// A seed of several images is byte-identical from save to save: the
// docker manifest.json containerd's exporter writes in map order is
// sorted, and the seed still reads in ctr.
func TestSaveDeterministicManyImages(t *testing.T) {
	var s testseed.Seed
	var names []string
	for _, n := range []string{"a", "b", "c", "d"} {
		b := uniqueImage(t, "registry.local/det/"+n+":1", impHostPlatform(), false, testseed.Gzip)
		s.Add(b.Name, b.Manifest, b.Blobs)
		names = append(names, b.Name)
	}
	seed := writeOCI(t, &s, testseed.Uncompressed)
	var first []byte
	var out string
	for i := 0; i < 3; i++ {
		out = filepath.Join(t.TempDir(), "many.tar")
		mustSave(t, namespace(t), append([]string{"--offline", "--seed", seed, "-o", out}, names...)...)
		b, _ := os.ReadFile(out)
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatalf("save %d differs from the first", i+1)
		}
	}
	var mj []struct{ RepoTags []string }
	json.Unmarshal([]byte(testutil.TarFiles(t, first)["manifest.json"]), &mj)
	if len(mj) != 4 || !slices.IsSortedFunc(mj, func(a, b struct{ RepoTags []string }) int { return strings.Compare(a.RepoTags[0], b.RepoTags[0]) }) {
		t.Errorf("manifest.json entries %v; want 4, sorted", mj)
	}
	ns := namespace(t) + "-ctr"
	ctr(t, ns, "images", "import", out)
	if got := imageMap(t, ns); len(got) != 4 {
		t.Errorf("ctr imported %v", keys(got))
	}
}

// saveFailedOneLine checks that a save exited 1 with one stderr line
// naming the output, dgst and what matched want, and left nothing in dir
// (no seed, no partial file).
func saveFailedOneLine(t *testing.T, r result, out string, dgst digest.Digest, want string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	t.Logf("stderr: %.400s", line)
	if r.code != 1 || strings.Contains(line, "\n") || !strings.HasPrefix(line, "ctr-seed: save "+out+": ") ||
		!strings.Contains(line, dgst.String()) || !strings.Contains(line, want) {
		t.Errorf("save: exit %d, stderr %.400q; want exit 1 and one line naming %s and %q", r.code, r.stderr, dgst, want)
	}
	left, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range left {
		t.Errorf("a failed save left %s", e.Name())
	}
}

// holdBody answers a GET with body, chunked (no Content-Length), and
// never ends it: the client sees EOF only when it gives up.
func holdBody(w http.ResponseWriter, req *http.Request, mediaType string, body []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	w.(http.Flusher).Flush()
	<-req.Context().Done()
}

// A manifest's first GET answered with other bytes of its size (a layer
// dropped, padded to the length), chunked so that EOF never comes: save
// refuses it before it walks it. It used to take the children from the
// unverified bytes and save a seed missing a layer.
func TestSaveRegistryTamperedManifest(t *testing.T) {
	a := pullFresh(t, "save-tamper", impHostPlatform(), testseed.Gzip)
	if len(a.Layers) < 2 {
		t.Fatalf("fixture: %d layers; want 2 or more", len(a.Layers))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(a.Blobs[a.Manifest.Digest], &m); err != nil {
		t.Fatal(err)
	}
	m.Layers = m.Layers[1:]
	tampered, _ := json.Marshal(m)
	tampered = append(tampered, bytes.Repeat([]byte(" "), int(a.Manifest.Size)-len(tampered))...)
	if int64(len(tampered)) != a.Manifest.Size || digest.FromBytes(tampered) == a.Manifest.Digest {
		t.Fatalf("fixture: tampered manifest of %d bytes", len(tampered))
	}
	var served atomic.Int32
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/manifests/"+a.Manifest.Digest.String()) && served.Add(1) == 1 {
				holdBody(w, req, a.Manifest.MediaType, tampered)
				return
			}
			next.ServeHTTP(w, req)
		})
	}
	reg := pullRegistry(t, testregistry.Options{Wrap: wrap}, "library/tamper", "1", a.Manifest, a.Blobs)
	out := filepath.Join(t.TempDir(), "app.tar")
	r := saveRun(t, namespace(t), "--plain-http", "-o", out, reg.Host+"/library/tamper:1")
	if served.Load() == 0 {
		t.Fatalf("the tampered manifest was never served: %s", r.stderr)
	}
	saveFailedOneLine(t, r, out, a.Manifest.Digest, "digest mismatch")
}

// A registry's size fields do not allocate: an index child or a referrer
// claiming 64 GiB is refused in one line naming it, as a seed's document
// over the cap is. It used to die with "fatal error: out of memory".
func TestSaveRegistryDocumentCap(t *testing.T) {
	const huge = 64 << 30
	t.Run("index-child", func(t *testing.T) {
		a := pullFresh(t, "save-cap-index", impHostPlatform(), testseed.Gzip)
		lying := *a
		lying.Manifest.Size = huge
		idx, blobs, err := indexFromBuilt(&lying)
		if err != nil {
			t.Fatal(err)
		}
		reg := pullRegistry(t, testregistry.Options{}, "library/capidx", "1", idx, blobs)
		out := filepath.Join(t.TempDir(), "app.tar")
		r := saveRun(t, namespace(t), "--plain-http", "-o", out, reg.Host+"/library/capidx:1")
		saveFailedOneLine(t, r, out, a.Manifest.Digest, "cap")
	})
	t.Run("referrer", func(t *testing.T) {
		a := pullFresh(t, "save-cap-ref", impHostPlatform(), testseed.Gzip)
		art, artBlobs := saveArtifact(t, a.Manifest, "referrer of "+a.Manifest.Digest.String())
		lying := art
		lying.Size = huge
		reg := pullRegistry(t, testregistry.Options{}, "library/capref", "1", a.Manifest, a.Blobs)
		saveReferrersTag(t, reg, "library/capref", a.Manifest.Digest, artBlobs, lying)
		out := filepath.Join(t.TempDir(), "app.tar")
		r := saveRun(t, namespace(t), "--plain-http", "-o", out, reg.Host+"/library/capref:1")
		saveFailedOneLine(t, r, out, art.Digest, "cap")
	})
}

// saveArtifact is an OCI 1.1 artifact manifest whose subject is subject
// (one small layer, the empty config), and its blobs.
func saveArtifact(t *testing.T, subject ocispec.Descriptor, text string) (ocispec.Descriptor, map[digest.Digest][]byte) {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	add := func(mt string, b []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		blobs[d.Digest] = b
		return d
	}
	sub := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.sbom",
		Config:       add(ocispec.MediaTypeEmptyJSON, []byte("{}")),
		Layers:       []ocispec.Descriptor{add("application/vnd.example.sbom", []byte(text))},
		Subject:      &sub,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := add(ocispec.MediaTypeImageManifest, raw)
	d.ArtifactType = m.ArtifactType
	return d, blobs
}

// saveReferrersTag lists refs as the referrers of subject in repo, in the
// sha256-<hex> fallback tag (Distribution has no referrers API); those
// blobs holds are pushed by digest first, whatever size refs claims.
func saveReferrersTag(t *testing.T, reg *testregistry.Registry, repo string, subject digest.Digest, blobs map[digest.Digest][]byte, refs ...ocispec.Descriptor) {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: refs}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	all := maps.Clone(blobs)
	all[d.Digest] = raw
	if err := reg.Push(t.Context(), repo, strings.Replace(subject.String(), ":", "-", 1), d, all); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
}

// A referrers cycle from a registry (A's referrers list B, B's list A) is
// cut where it closes: save asks for each manifest's referrers once and
// saves both. It used to walk the cycle for ~13k requests, until
// containerd's walk limit (here the registry answers 500 after 50).
func TestSaveRegistryReferrersCycle(t *testing.T) {
	a := pullFresh(t, "save-cycle", impHostPlatform(), testseed.Gzip)
	art, artBlobs := saveArtifact(t, a.Manifest, "cycle")
	var mu sync.Mutex
	asked := map[string]int{}
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if _, tag, ok := strings.Cut(req.URL.Path, "/manifests/sha256-"); ok && req.Method == http.MethodGet {
				mu.Lock()
				asked[tag]++
				n := len(asked) + asked[tag]
				mu.Unlock()
				if n > 50 {
					http.Error(w, "too many referrers requests", http.StatusInternalServerError)
					return
				}
			}
			next.ServeHTTP(w, req)
		})
	}
	reg := pullRegistry(t, testregistry.Options{Wrap: wrap}, "library/cycle", "1", a.Manifest, a.Blobs)
	saveReferrersTag(t, reg, "library/cycle", a.Manifest.Digest, artBlobs, art)
	saveReferrersTag(t, reg, "library/cycle", art.Digest, a.Blobs, a.Manifest)
	mu.Lock()
	clear(asked)
	mu.Unlock()
	out := filepath.Join(t.TempDir(), "cycle.tar")
	mustSave(t, namespace(t), "--plain-http", "-o", out, reg.Host+"/library/cycle:1")
	mu.Lock()
	defer mu.Unlock()
	for tag, n := range asked {
		if n > 1 {
			t.Errorf("referrers of sha256:%s asked %d times; want once", tag, n)
		}
	}
	if len(asked) != 2 {
		t.Errorf("referrers asked of %v; want of the image and of its referrer", asked)
	}
	names := tarNames(t, out)
	for _, d := range []digest.Digest{a.Manifest.Digest, art.Digest} {
		if !slices.Contains(names, "blobs/sha256/"+d.Encoded()) {
			t.Errorf("the seed lacks %s: %v", d, names)
		}
	}
}

// A save killed with SIGKILL leaves its hidden partial files (one per part
// with --split); the next save into the same directory removes them, one
// line each, and leaves those of a save still running. They used to stay
// forever.
func TestSaveRemovesKilledPartials(t *testing.T) {
	a := pullFresh(t, "save-killed", impHostPlatform(), testseed.Gzip)
	layer := a.Layers[0]
	var hold atomic.Bool
	stalled := make(chan struct{}, 2)
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+layer.Digest.String()) && hold.Load() {
				// Every record before the layer's is in the output
				// files when its GET arrives (the exporter writes
				// through a pipe, in order).
				stalled <- struct{}{}
				holdBody(w, req, layer.MediaType, a.Blobs[layer.Digest][:layer.Size/2])
				return
			}
			next.ServeHTTP(w, req)
		})
	}
	reg := pullRegistry(t, testregistry.Options{Wrap: wrap}, "library/killed", "1", a.Manifest, a.Blobs)
	ref := reg.Host + "/library/killed:1"
	dir := t.TempDir()
	start := func(out string) *harness.Proc {
		p := harness.Start(t, harness.Cmd{
			Argv: []string{ctrSeed, "--address", daemon.Address, "--namespace", namespace(t), "save", "--plain-http", "--split", "512", "-o", filepath.Join(dir, out), ref},
			Env:  []string{"DOCKER_CONFIG=" + t.TempDir()},
		})
		select {
		case <-stalled:
		case <-t.Context().Done():
			t.Fatalf("save %s never asked for layer %s: %v", out, layer.Digest, p.Running())
		}
		return p
	}
	partials := func(base string) []string {
		var out []string
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), "."+base+".partial-") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	hold.Store(true)
	killed := start("killed.tar")
	if err := killed.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := killed.Result(); r.Signal != syscall.SIGKILL {
		t.Fatalf("save: %s; want killed", r)
	}
	left := partials("killed.tar")
	if len(left) < 2 {
		t.Fatalf("a save killed after 1 KiB of --split 512 left %v; want 2 parts or more", left)
	}
	// The next save into the directory (of another OUT) removes them
	// before it writes: they are gone when it asks for the layer.
	live := start("live.tar")
	if got := partials("killed.tar"); len(got) > 0 {
		t.Errorf("the killed save's partial files are still there: %v", got)
	}
	running := partials("live.tar")
	if len(running) == 0 {
		t.Fatal("the running save has no partial file")
	}
	// A save meanwhile leaves the running one's alone.
	hold.Store(false)
	r := mustSave(t, namespace(t), "--plain-http", "-o", filepath.Join(dir, "next.tar"), ref)
	if strings.Contains(r.stdout, "removed ") {
		t.Errorf("a save beside a running one removed something: %q", r.stdout)
	}
	// The running save may have added a part since (what its exporter's
	// pipe still held): none of those seen before may be gone.
	if got := partials("live.tar"); slices.ContainsFunc(running, func(n string) bool { return !slices.Contains(got, n) }) {
		t.Errorf("the running save's partial files are %v; want all of %v still there", got, running)
	}
	if err := live.Running(); err != nil {
		t.Fatalf("the running save: %v", err)
	}
	live.Signal(syscall.SIGKILL)
	out := live.Result().Stdout
	for _, n := range left {
		if !strings.Contains(out, "removed "+filepath.Join(dir, n)+": left by a save that was killed\n") {
			t.Errorf("no line says %s was removed: %q", n, out)
		}
	}
}
