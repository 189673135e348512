package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Issue 11's hostile and odd seeds, each refused (or landed whole) the
// way the issue asks. The inputs are built here, in Go.

// hardLayerSeed is an OCI layout tar of one image whose only layer is
// blob (media type mt, uncompressed content raw), named name.
func hardLayerSeed(t *testing.T, name string, raw, blob []byte, mt string) (string, relImage, ocispec.Descriptor) {
	t.Helper()
	layer := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	img := relImageOf(t, []ocispec.Descriptor{layer}, []digest.Digest{digest.FromBytes(raw)}, nil, nil)
	seed := relWriteSeed(t, name, img.manifest,
		relBlobEntry(img.manifest.Digest, img.blobs[img.manifest.Digest]),
		relBlobEntry(img.config.Digest, img.blobs[img.config.Digest]),
		relBlobEntry(layer.Digest, blob))
	return seed, relImage{name, img.manifest.Digest}, layer
}

// hardEditedSeed is a seed of b whose manifest edit changed (the other
// blobs as they are), and that manifest's descriptor.
func hardEditedSeed(t *testing.T, b *testseed.Built, edit func(*ocispec.Manifest)) (string, ocispec.Descriptor) {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(b.Blobs[b.Manifest.Digest], &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	mb, _ := json.Marshal(m)
	man := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	es := []relEntry{relBlobEntry(man.Digest, mb)}
	for d, p := range b.Blobs {
		if d != b.Manifest.Digest {
			es = append(es, relBlobEntry(d, p))
		}
	}
	return relWriteSeed(t, b.Name, man, es...), man
}

// zeroTar is a layer tar holding one file of n zero bytes.
func zeroTar(t *testing.T, n int) []byte {
	return testutil.RawTar(t, testutil.RawEntry{Name: "zeros", Body: make([]byte, n)})
}

func hardGzip(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func hardZstd(t *testing.T, b []byte, opts ...zstd.EOption) []byte {
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

// 1. Layers the daemon applies are held to the cap too: a zstd layer with
// a 64 MiB window, one behind a skippable frame, and a gzip bomb the store
// already holds (from `ctr images import --no-unpack` in another
// namespace), each with --daemon-apply and --max-layer-bytes 1000000.
func TestHardeningDaemonApplyBombs(t *testing.T) {
	raw := zeroTar(t, 64<<20)
	skippable := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0}, "skip"...)
	for _, tc := range []struct {
		name string
		blob []byte
		mt   string
		// inStore imports the seed's content first, elsewhere, with ctr.
		inStore bool
	}{
		{"zstd-64MiB-window", hardZstd(t, raw, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(false)), ocispec.MediaTypeImageLayerZstd, false},
		{"zstd-skippable-frame-first", append(skippable, hardZstd(t, raw)...), ocispec.MediaTypeImageLayerZstd, false},
		{"gzip-already-in-store", hardGzip(t, raw), ocispec.MediaTypeImageLayerGzip, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			seed, img, layer := hardLayerSeed(t, "registry.local/hard/bomb-"+tc.name+":1", raw, tc.blob, tc.mt)
			if tc.inStore {
				ctr(t, ns+"-ctr", "images", "import", "--no-unpack", seed)
			}
			relRefused(t, ns, relWant{seed: seed, image: &img, blob: layer.Digest,
				cause: "decompression bomb: expands beyond 1000000 bytes"}, "--daemon-apply", "--max-layer-bytes", "1000000")
			// In process, the same.
			relRefused(t, ns, relWant{seed: seed, image: &img, blob: layer.Digest,
				cause: "decompression bomb: expands beyond 1000000 bytes"}, "--max-layer-bytes", "1000000")
		})
	}
}

// 2. A sparse entry declaring 1.5 GiB in a ~200-byte gzip layer is held to
// the cap by what it declares, in every mode, and by verify.
func TestHardeningSparseLayer(t *testing.T) {
	raw := testutil.SparseTar(t, "big", 3<<29)
	blob := hardGzip(t, raw)
	seed, img, layer := hardLayerSeed(t, "registry.local/hard/sparse:1", raw, blob, ocispec.MediaTypeImageLayerGzip)
	cause := fmt.Sprintf("decompression bomb: expands beyond %d bytes", 1<<30)
	for _, mode := range [][]string{nil, {"--daemon-apply"}} {
		relRefused(t, namespace(t), relWant{seed: seed, image: &img, blob: layer.Digest, cause: cause}, mode...)
	}
	if r := relRun(t, namespace(t), "verify", seed); r.code != 1 || !strings.Contains(r.stderr, layer.Digest.String()) || !strings.Contains(r.stderr, cause) {
		t.Errorf("verify: exit %d, stderr %q; want the layer refused", r.code, r.stderr)
	}
}

// 3. The index of a tar seed is capped: a 64 KiB PAX name is refused at
// once (ls, verify and import), with one line.
func TestHardeningIndexNameCap(t *testing.T) {
	long := strings.Repeat("n", 64<<10)
	seed := impWriteBytes(t, "long-name.tar", testutil.RawTar(t,
		testutil.RawEntry{Name: "oci-layout", Body: []byte(impOciLayoutBody)},
		testutil.RawEntry{Name: long, Body: []byte("x")}))
	for _, cmd := range []string{"ls", "verify", "import"} {
		r := relRun(t, namespace(t), cmd, seed)
		if r.code != 1 || len(impLines(r.stderr)) < 1 || !strings.Contains(r.stderr, "beyond the 4096 byte cap") || strings.Contains(r.stderr, long) {
			t.Errorf("%s: exit %d, stderr %.300q; want one line about the name cap", cmd, r.code, r.stderr)
		}
	}
}

// 5. A descriptor whose digest has no ':' (deadbeef) fails the image with
// one line, on a terminal too, and leaves nothing: no panic.
func TestHardeningDigestWithoutColon(t *testing.T) {
	b := uniqueImage(t, "registry.local/hard/deadbeef:1", impHostPlatform(), false, testseed.Gzip)
	seed, man := hardEditedSeed(t, b, func(m *ocispec.Manifest) { m.Layers[len(m.Layers)-1].Digest = "deadbeef" })
	ns := namespace(t)
	relRefused(t, ns, relWant{seed: seed, image: &relImage{b.Name, man.Digest}, cause: `"deadbeef".*invalid digest`})

	// On a terminal (progress bars): the same, no panic.
	cmd := exec.Command("script", "-q", "-e", "-c", strings.Join([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "import", seed}, " "), "/dev/null")
	out, err := cmd.CombinedOutput()
	ee, _ := err.(*exec.ExitError)
	if ee == nil || ee.ExitCode() != 1 || strings.Contains(string(out), "panic") || !strings.Contains(string(out), "invalid digest") {
		t.Errorf("on a terminal: %v, output %q; want exit 1 and the line, no panic", err, out)
	}
	assertNothingLeft(t, ns)
}

// 6. Entries that share a digest but describe it differently are checked
// one by one: the liar fails, naming itself; the good one lands, whichever
// comes first.
func TestHardeningEntriesSharingADigest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(d *ocispec.Descriptor)
		cause string
	}{
		{"typed-as-index", func(d *ocispec.Descriptor) { d.MediaType = ocispec.MediaTypeImageIndex }, "expected index but found manifest"},
		{"wrong-size", func(d *ocispec.Descriptor) { d.Size++ }, "size mismatch"},
		{"empty-media-type", func(d *ocispec.Descriptor) { d.MediaType = "" }, "not an image manifest or index"},
	} {
		for _, badFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bad-first=%v", tc.name, badFirst), func(t *testing.T) {
				ns := namespace(t)
				b := uniqueImage(t, "registry.local/hard/shared-good:1", impHostPlatform(), false, testseed.Gzip)
				good := impNamedEntry(b)
				bad := impNamedEntry(b)
				bad.Annotations = map[string]string{images.AnnotationImageName: "registry.local/hard/shared-bad:1", ocispec.AnnotationRefName: "1"}
				tc.edit(&bad)
				entries := []ocispec.Descriptor{good, bad}
				if badFirst {
					entries = []ocispec.Descriptor{bad, good}
				}
				var blobs []impRawEntry
				for d, p := range b.Blobs {
					blobs = append(blobs, impBlobEntry(d, p))
				}
				seed := impWriteBytes(t, "shared.tar", impLayoutWith(t, entries, blobs...))
				r := ctrSeedRun(t, ns, "import", seed)
				if r.code != 1 {
					t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				el := impErrorLines(t, r.stderr, "")
				re := regexp.MustCompile(`^ctr-seed: seed \S+: image registry.local/hard/shared-bad:1 .*` + tc.cause)
				if len(el) != 1 || !re.MatchString(el[0]) {
					t.Errorf("stderr:\n%s\nwant one line matching %s", r.stderr, re)
				}
				impAssertTargets(t, ns, map[string]digest.Digest{b.Name: b.Manifest.Digest})
				impAssertUnpacked(t, ns, b.Name)
			})
		}
	}
}

// 7. Nothing usable landed: exit 1 with a line saying why.
func TestHardeningNothingUsable(t *testing.T) {
	other := uniqueImage(t, "", impOtherPlatform(), false, testseed.Gzip)
	idx, idxBlobs, err := indexFromBuilt(other)
	if err != nil {
		t.Fatal(err)
	}
	odd := uniqueImage(t, "registry.local/hard/odd-config:1", impHostPlatform(), false, testseed.Gzip)
	for _, tc := range []struct {
		name  string
		seed  func(t *testing.T) string
		cause string
	}{
		{"empty-index", func(t *testing.T) string {
			return impWriteBytes(t, "empty.tar", impLayoutWith(t, nil))
		}, "no images: its index lists none"},
		{"other-platform-only", func(t *testing.T) string {
			var s testseed.Seed
			s.Add("registry.local/hard/other:1", idx, idxBlobs)
			return writeOCI(t, &s, testseed.Uncompressed)
		}, "no manifest for " + platforms.Format(impHostPlatform()) + " in the index.*image might be filtered out"},
		{"unknown-config-type", func(t *testing.T) string {
			seed, _ := hardEditedSeed(t, odd, func(m *ocispec.Manifest) { m.Config.MediaType = "application/vnd.example.unknown+json" })
			return seed
		}, `no container image to import: every entry is skipped \(not a container image: an artifact \(config application/vnd\.example\.unknown\+json\)\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			seed := tc.seed(t)
			r := ctrSeedRun(t, ns, "import", seed)
			el := impErrorLines(t, r.stderr, "")
			if r.code != 1 || len(el) != 1 || !regexp.MustCompile(tc.cause).MatchString(el[0]) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line matching %s", r.code, r.stderr, tc.cause)
			}
			if imgs := imageMap(t, ns); len(imgs) != 0 {
				t.Errorf("records left: %v", keys(imgs))
			}
			assertNothingLeft(t, ns)
		})
	}
}

// 8. A layer typed as an uncompressed tar that holds gzip is applied as
// the daemon and ctr apply it: as a tar, so it is refused either way.
func TestHardeningMediaTypeLie(t *testing.T) {
	raw := testutil.RawTar(t, testutil.RawEntry{Name: "etc/motd", Body: []byte("hello\n")})
	seed, img, layer := hardLayerSeed(t, "registry.local/hard/plain-typed-gzip:1", raw, hardGzip(t, raw), ocispec.MediaTypeImageLayer)
	for _, mode := range [][]string{nil, {"--daemon-apply"}} {
		relRefused(t, namespace(t), relWant{seed: seed, image: &img, cause: "unexpected EOF"}, mode...)
	}
	_ = layer
}

// 12. A name holding a newline and terminal escapes is refused by ls and
// import, printed escaped, never raw; no record is made.
func TestHardeningControlCharactersInNames(t *testing.T) {
	b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
	evil := "registry.local/ok:1\n\x1b[32mseed OK\x1b[0m\x1b]0;pwned\x07"
	entry := b.Manifest
	entry.Annotations = map[string]string{images.AnnotationImageName: evil}
	var blobs []impRawEntry
	for d, p := range b.Blobs {
		blobs = append(blobs, impBlobEntry(d, p))
	}
	seed := impWriteBytes(t, "evil.tar", impLayoutWith(t, []ocispec.Descriptor{entry}, blobs...))
	ns := namespace(t)
	for _, cmd := range []string{"ls", "import"} {
		r := ctrSeedRun(t, ns, cmd, seed)
		if r.code != 1 || strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") || !strings.Contains(r.stderr, `\x1b`) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and the name escaped", cmd, r.code, r.stdout, r.stderr)
		}
	}
	if imgs := imageMap(t, ns); len(imgs) != 0 {
		t.Errorf("records: %v", keys(imgs))
	}
}

// 13. Messages that say what is wrong: a manifest.json entry without
// Config, a blob stored only under ../blobs, a docker layer that is
// manifest.json itself.
func TestHardeningMessages(t *testing.T) {
	b := uniqueImage(t, "registry.local/hard/msg:1", impHostPlatform(), false, testseed.Gzip)
	top := b.Layers[len(b.Layers)-1].Digest
	for _, tc := range []struct {
		name  string
		seed  func(t *testing.T) string
		cause string
	}{
		{"docker-entry-without-config", func(t *testing.T) string {
			return impWriteBytes(t, "noconfig.tar", testutil.RawTar(t,
				testutil.RawEntry{Name: "manifest.json", Body: []byte(`[{"RepoTags":["x:1"],"Layers":[]}]`)}))
		}, `manifest.json entry \[x:1\] has no Config`},
		{"blob-only-under-dotdot", func(t *testing.T) string {
			var es []impRawEntry
			for d, p := range b.Blobs {
				if d == top {
					es = append(es, impRawEntry{Name: "../blobs/sha256/" + d.Encoded(), Body: p})
				} else {
					es = append(es, impBlobEntry(d, p))
				}
			}
			return impWriteBytes(t, "dotdot.tar", impLayoutWith(t, []ocispec.Descriptor{impNamedEntry(b)}, es...))
		}, "path leaves the archive"},
		{"docker-layer-is-manifest-json", func(t *testing.T) string {
			cfg := b.Blobs[b.Config.Digest]
			layers := strings.TrimSuffix(strings.Repeat(`"manifest.json",`, len(b.DiffIDs)), ",")
			return impWriteBytes(t, "layer-manifest.tar", testutil.RawTar(t,
				testutil.RawEntry{Name: "config.json", Body: cfg},
				testutil.RawEntry{Name: "manifest.json", Body: []byte(`[{"Config":"config.json","RepoTags":["registry.local/hard/msg:1"],"Layers":[` + layers + `]}]`)}))
		}, `\(file manifest.json\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			r := ctrSeedRun(t, ns, "import", tc.seed(t))
			el := impErrorLines(t, r.stderr, "")
			if r.code != 1 || len(el) != 1 || !regexp.MustCompile(tc.cause).MatchString(el[0]) || strings.Contains(el[0], "offline") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line matching %s", r.code, r.stderr, tc.cause)
			}
			assertNothingLeft(t, ns)
		})
	}
}
