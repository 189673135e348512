package fetcher

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hangLimit fails an input that takes this long; a healthy one takes ms.
const hangLimit = 5 * time.Second

// tarEnt is one tar entry (Type 0: a regular file holding Body).
type tarEnt = testutil.RawEntry

// retar reads the tar base (nil: none) and writes it back with edits,
// each replacing the entry of its name or else appended.
func retar(t testing.TB, base []byte, edits ...tarEnt) []byte {
	var es []tarEnt
	tr := tar.NewReader(bytes.NewReader(base))
	for hdr, err := tr.Next(); err != io.EOF; hdr, err = tr.Next() {
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		es = append(es, tarEnt{Name: hdr.Name, Link: hdr.Linkname, Type: hdr.Typeflag, Body: data})
	}
	for _, e := range edits {
		if i := slices.IndexFunc(es, func(x tarEnt) bool { return x.Name == e.Name }); i >= 0 {
			es[i] = e
		} else {
			es = append(es, e)
		}
	}
	return testutil.RawTar(t, es...)
}

func compress(t testing.TB, b []byte, c testseed.Compression) []byte {
	return testutil.Archive(t, c, testutil.Bytes(b))
}

// smallSeeds returns a one-image OCI tar (10 KB) and docker save tar (43 KB).
func smallSeeds(t testing.TB) (oci, docker []byte, img *testseed.Built) {
	img = build(t, testseed.Standard("docker.io/library/demo:1.0", amd64, false, testseed.Gzip))
	var s testseed.Seed
	s.Add("docker.io/library/demo:1.0", img.Manifest, img.Blobs)
	var o, d bytes.Buffer
	if err := s.WriteOCITar(&o); err != nil {
		t.Fatal(err)
	}
	if err := testseed.WriteDockerTar(&d, []testseed.DockerImage{{RepoTags: []string{"demo:1.0"}, Built: img}}); err != nil {
		t.Fatal(err)
	}
	return o.Bytes(), d.Bytes(), img
}

// shortMinimize caps the minimizing of each new interesting input (60 s by
// default) unless -fuzzminimizetime is given: at ~1 ms a run, minimizing one
// 40 KB seed would use up the whole `make fuzz` budget.
func shortMinimize() {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		flag.Set("test.fuzzminimizetime", "2s")
	}
}

// withinBudget runs fn, which may only report with t.Errorf, and fails the
// test with every goroutine's stack if fn hangs.
func withinBudget(t *testing.T, fn func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	select {
	case <-done:
	case <-time.After(hangLimit):
		buf := make([]byte, 1<<20)
		t.Fatalf("input still running after %v:\n%s", hangLimit, buf[:runtime.Stack(buf, true)])
	}
}

func namesSeed(t *testing.T, p string, err error) {
	if err != nil && !strings.Contains(err.Error(), p) {
		t.Errorf("error does not name the seed %s: %v", p, err)
	}
}

// openAndExercise opens the seed at p and drives every read path over it.
func openAndExercise(t *testing.T, ctx context.Context, p string) {
	s, err := Open(ctx, p)
	if err != nil {
		namesSeed(t, p, err)
		return
	}
	defer s.Close()
	// The document Open parsed, and the index it gives Images, are capped.
	doc := map[bool]string{false: ocispec.ImageIndexFile, true: dockerManifestFile}[strings.HasPrefix(s.Format(), "docker-")]
	if f, err := s.arch.lookup(doc); err != nil || f.size > MaxJSONSize || s.Index().Size > MaxJSONSize {
		t.Errorf("%s opened with %s of %d bytes (%v) and an index of %d bytes; the cap is %d", s.Format(), doc, f.size, err, s.Index().Size, MaxJSONSize)
	}
	descs := []ocispec.Descriptor{s.Index()}
	imgs, err := s.Images(ctx)
	namesSeed(t, p, err)
	for _, img := range imgs[:min(len(imgs), 4)] {
		descs = append(descs, img.Target)
		Platforms(ctx, s, img.Target)
		Size(ctx, s, img.Target)
		var m ocispec.Manifest
		if b, err := s.ReadBlob(ctx, img.Target); err != nil || json.Unmarshal(b, &m) != nil {
			continue
		}
		// Descriptors inside a manifest come from the seed: the cap holds
		// whatever size they declare.
		if b, err := s.ReadBlob(ctx, m.Config); err == nil && len(b) > MaxJSONSize {
			t.Errorf("ReadBlob(config %s, declared size %d) returned %d bytes, over the cap", m.Config.Digest, m.Config.Size, len(b))
		}
		descs = append(append(descs, m.Config), m.Layers[:min(len(m.Layers), 8)]...)
	}
	for _, err := range s.Verify(ctx, layerlimit.Default()) {
		namesSeed(t, p, err)
	}
	names, _ := s.arch.list("blobs")
	for _, n := range names[:min(len(names), 8)] {
		if d, ok := digestFromBlobPath(n); ok {
			size, _ := s.Has(d)
			descs = append(descs, ocispec.Descriptor{Digest: d, Size: size})
		}
	}
	for _, d := range descs {
		fetchVerified(t, ctx, s, d)
	}
}

// fetchVerified checks that whatever Fetch serves without an error is desc.
func fetchVerified(t *testing.T, ctx context.Context, s *Seed, desc ocispec.Descriptor) {
	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		namesSeed(t, s.Path(), err)
		return
	}
	defer rc.Close()
	dg := desc.Digest.Algorithm().Digester()
	if n, err := io.Copy(dg.Hash(), rc); err != nil {
		namesSeed(t, s.Path(), err)
	} else if dg.Digest() != desc.Digest || (desc.Size >= 0 && n != desc.Size) {
		t.Errorf("Fetch(%s, %d bytes) served %d bytes hashing to %s without an error", desc.Digest, desc.Size, n, dg.Digest())
	}
}

func FuzzOpenSeed(f *testing.F) {
	shortMinimize()
	oci, docker, img := smallSeeds(f)
	cfg := "blobs/sha256/" + img.Config.Digest.Encoded()
	for _, b := range [][]byte{
		oci, docker, compress(f, oci, testseed.Gzip), compress(f, docker, testseed.Zstd),
		retar(f, oci, tarEnt{Name: cfg, Type: tar.TypeSymlink, Link: "/etc/passwd"}),
		retar(f, oci, tarEnt{Name: cfg, Type: tar.TypeLink, Link: cfg}),
		retar(f, oci, tarEnt{Name: "index.json", Body: []byte("not json {")}),
		retar(f, nil, tarEnt{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			tarEnt{Name: "../index.json", Body: []byte(`{"schemaVersion":2,"manifests":[]}`)},
			tarEnt{Name: "blobs/../../etc/passwd", Body: []byte("root")},
			tarEnt{Name: "index.json", Type: tar.TypeSymlink, Link: "../index.json"}),
		retar(f, nil, tarEnt{Name: "manifest.json", Body: []byte(`[{"Config":"../../etc/passwd","Layers":["/dev/zero"]}]`)}),
		{}, {0x1f, 0x8b}, {0xfd, '7', 'z', 'X', 'Z', 0},
	} {
		if len(b) >= 64<<10 {
			f.Fatalf("seed input of %d bytes; keep them under 64 KiB", len(b))
		}
		f.Add(b)
	}
	// Documents over the cap are refused by their declared size. These
	// inflate to 32 MiB, too slow to fuzz, so they are checked once here.
	pad := func(doc string) []byte {
		return append([]byte(doc), bytes.Repeat([]byte(" "), MaxJSONSize+1-len(doc))...)
	}
	for name, b := range map[string][]byte{
		"index.json":    compress(f, retar(f, oci, tarEnt{Name: "index.json", Body: pad(`{"schemaVersion":2}`)}), testseed.Gzip),
		"manifest.json": compress(f, retar(f, docker, tarEnt{Name: "manifest.json", Body: pad(`[]`)}), testseed.Zstd),
	} {
		p := testutil.WriteFile(f, filepath.Join(f.TempDir(), "big"), b)
		if s, err := Open(context.Background(), p); err == nil {
			s.Close()
			f.Fatalf("a seed with a %d byte %s opened", MaxJSONSize+1, name)
		} else if !strings.Contains(err.Error(), "cap") || !errdefs.IsInvalidArgument(err) {
			f.Fatalf("oversized %s: unexpected error %v", name, err)
		}
	}
	dir := f.TempDir() // a worker runs one input at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		p := testutil.WriteFile(t, filepath.Join(dir, "seed"), data)
		withinBudget(t, func(ctx context.Context) { openAndExercise(t, ctx, p) })
	})
}

func FuzzDockerManifest(f *testing.F) {
	shortMinimize()
	_, docker, img := smallSeeds(f)
	cfg, layer := img.Config.Digest.Encoded()+".json", img.DiffIDs[0].Encoded()+"/layer.tar"
	blob0, blob1 := "blobs/sha256/"+img.DiffIDs[0].Encoded(), "blobs/sha256/"+img.DiffIDs[1].Encoded()
	var layers []string
	for _, d := range img.DiffIDs {
		layers = append(layers, d.Encoded()+"/layer.tar")
	}
	// More for a manifest to name: a layer under a blobs/ name, links
	// escaping the archive or looping.
	base := retar(f, docker, tarEnt{Name: blob0, Type: tar.TypeLink, Link: layer}, tarEnt{Name: blob1, Type: tar.TypeSymlink, Link: "/etc/passwd"},
		tarEnt{Name: "loop/a", Type: tar.TypeSymlink, Link: "b"}, tarEnt{Name: "loop/b", Type: tar.TypeSymlink, Link: "a"})
	for _, m := range []string{
		`[{"Config":"` + cfg + `","RepoTags":["demo:1.0"],"Layers":["` + strings.Join(layers, `","`) + `"]}]`, // as written
		`[]`, `{}`, `null`, `[{}]`, `[{"Config":"/etc/passwd"}]`, `[{"Config":"` + layer + `","Layers":["` + cfg + `"]}]`,
		`[{"Config":"` + cfg + `","RepoTags":["UPPER:case"]}]`,
		`[{"Config":"` + cfg + `","RepoTags":["a@sha256:` + strings.Repeat("0", 64) + `"],"Layers":["` + layer + `","` + blob0 + `"]}]`,
		`[{"Config":"` + cfg + `","Layers":["` + blob1 + `","loop/a","../` + layer + `"]}]`,
	} {
		f.Add([]byte(m))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, manifest []byte) {
		p := testutil.WriteFile(t, filepath.Join(dir, "docker.tar"), retar(t, base, tarEnt{Name: dockerManifestFile, Body: manifest}))
		withinBudget(t, func(ctx context.Context) { openAndExercise(t, ctx, p) })
	})
}

func FuzzPick(f *testing.F) {
	dA := digest.FromString("a")
	f.Add("alpine:3.20", "docker.io/library/alpine:3.20", "3.20", "3.20")
	f.Add("alpine@"+dA.String(), "alpine", "", "latest")
	f.Add("alpine:3@"+dA.String(), "docker.io/library/alpine@"+dA.String(), "alpine:3", "3")
	f.Add("x@"+dA.String(), "", "v1", "v1")
	f.Add("registry.local:5000/app", "", "registry.local:5000/app:latest", "latest")
	f.Add("busybox:1.36", "", "1.36", "busybox:1.36")
	f.Add("UPPER:case", "UPPER:case", "", "")
	f.Fuzz(func(t *testing.T, ref, imageName, refName, tag string) {
		q, err := parseQuery(ref)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("parseQuery(%q): %v is not InvalidArgument", ref, err)
			}
			return
		}
		if q2, err := parseQuery(q.ref); err != nil || q2 != q {
			t.Fatalf("parseQuery not idempotent: %q -> %+v, then %+v, %v", ref, q, q2, err)
		}
		s1, s2 := &Seed{path: "one"}, &Seed{path: "two"}
		cands := []candidate{
			{seed: s1, desc: entryDesc(dA, imageName, refName)},
			{seed: s1, desc: entryDesc(digest.FromString("b"), "", tag)},
			{seed: s2, desc: entryDesc(digest.FromString("c"), "", refName), repoTag: slices.DeleteFunc([]string{tag, imageName}, func(s string) bool { return s == "" })},
		}
		if q.pin != "" {
			cands = append(cands, candidate{seed: s2, desc: entryDesc(q.pin, imageName, tag)})
		}
		got, err := pick(q, cands)

		// Oracle: the first level (image name, full ref.name, tag alone on
		// an entry with no other name, RepoTag) at which anything matches
		// decides, in seed order.
		full := func(name string, d digest.Digest) bool {
			n, err := distref.ParseDockerRef(name)
			if err != nil || q.pin == "" {
				return err == nil && n.String() == q.ref
			}
			c, ok := n.(distref.Canonical)
			return d == q.pin && n.Name() == q.repo && (!ok || c.Digest() == q.pin)
		}
		level := func(c candidate) int {
			in, rn, d := c.desc.Annotations[images.AnnotationImageName], c.desc.Annotations[ocispec.AnnotationRefName], c.desc.Digest
			tagOnly := rn != "" && !strings.ContainsAny(rn, "/:@")
			switch {
			case in != "" && full(in, d):
				return 0
			case rn != "" && !tagOnly && full(rn, d):
				return 1
			case tagOnly && in == "" && len(c.repoTag) == 0 && (q.pin != "" && d == q.pin || q.pin == "" && rn == q.tag):
				return 2
			case slices.ContainsFunc(c.repoTag, func(rt string) bool { return full(rt, d) }):
				return 3
			}
			return 4
		}
		best, hits, ambiguous := 4, []candidate(nil), false
		for _, c := range cands {
			if l := level(c); l < best {
				best, hits = l, []candidate{c}
			} else if l == best && l < 4 {
				hits = append(hits, c)
				ambiguous = ambiguous || l == 2 && q.pin == "" && c.desc.Digest != hits[0].desc.Digest
			}
		}
		switch {
		case best == 4 && !errdefs.IsNotFound(err):
			t.Fatalf("%q matches nothing, pick gave %+v, %v", ref, got.desc, err)
		case ambiguous && !errdefs.IsFailedPrecondition(err):
			t.Fatalf("%q: tag %q is ambiguous, pick gave %+v, %v", ref, q.tag, got.desc, err)
		case best == 4 || ambiguous:
		case err != nil || !reflect.DeepEqual(got, hits[0]):
			t.Fatalf("%q: picked %+v, %v; want %+v (level %d)", ref, got.desc, err, hits[0].desc, best)
		case q.pin != "" && got.desc.Digest != q.pin:
			t.Fatalf("%q pins %s, picked %s", ref, q.pin, got.desc.Digest)
		case q.pin == "" && best == 2 && got.desc.Annotations[ocispec.AnnotationRefName] != q.tag:
			t.Fatalf("%q picked by tag, but its ref.name is %q", ref, got.desc.Annotations[ocispec.AnnotationRefName])
		}
	})
}
