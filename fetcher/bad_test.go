package fetcher

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// rawEntry is a hand-made tar entry, for archives no tool would write.
type rawEntry = testutil.RawEntry

// layoutWith is an OCI layout tar whose index names one manifest,
// plus the given extra entries.
func layoutWith(t testing.TB, manifest ocispec.Descriptor, extra ...rawEntry) []byte {
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{manifest}})
	es := []rawEntry{
		{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{Name: "index.json", Body: idx},
	}
	return testutil.RawTar(t, append(es, extra...)...)
}

func blobPath(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }

func fetchErr(t *testing.T, s *Seed, desc ocispec.Descriptor) error {
	t.Helper()
	rc, err := s.Fetch(context.Background(), desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("blob %s served without error", desc.Digest)
	}
	return err
}

func wantMsg(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not mention %q", msg, p)
		}
	}
}

func TestCorruptAndMissingBlobs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	layer := f.demo.Layers[1]
	good := f.seed.Blobs[layer.Digest]
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	f.seed.Blobs[layer.Digest] = bad
	p := f.write(t, "oci-tar")
	s := openSeed(t, p)
	err := fetchErr(t, s, layer)
	wantMsg(t, err, "seed "+p, "blob "+layer.Digest.String(), "digest mismatch: expected "+layer.Digest.String()+", got sha256:")
	if !errdefs.IsDataLoss(err) {
		t.Errorf("corrupt blob error class: %v", err)
	}
	errs := s.Verify(ctx, layerlimit.Default())
	if len(errs) == 0 {
		t.Fatal("verify passed a corrupt layer")
	}
	wantMsg(t, errs[0], "seed "+p, layer.Digest.String(), "digest mismatch")

	f = newFixture(t)
	layer = f.demo.Layers[2]
	delete(f.seed.Blobs, layer.Digest)
	p = f.write(t, "oci-tar")
	s = openSeed(t, p)
	_, err = s.Fetch(ctx, layer)
	wantMsg(t, err, "seed "+p, "blob "+layer.Digest.String())
	if !errdefs.IsNotFound(err) {
		t.Errorf("missing blob error class: %v", err)
	}
	errs = s.Verify(ctx, layerlimit.Default())
	if len(errs) != 1 {
		t.Fatalf("verify: %v", errs)
	}
	wantMsg(t, errs[0], "seed "+p, layer.Digest.String(), "missing (layer 2 of manifest "+f.demo.Manifest.Digest.String())
}

func TestDiffIDMismatch(t *testing.T) {
	f := newFixture(t)
	// A config whose diffID for layer 0 is wrong, in a manifest that is
	// otherwise consistent: only decompressing the layer can tell.
	var cfg ocispec.Image
	json.Unmarshal(f.demo.Blobs[f.demo.Config.Digest], &cfg)
	cfg.RootFS.DiffIDs[0] = digest.FromString("not the layer")
	cb, _ := json.Marshal(cfg)
	var m ocispec.Manifest
	json.Unmarshal(f.demo.Blobs[f.demo.Manifest.Digest], &m)
	m.Config = ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	f.seed.Blobs[m.Config.Digest], f.seed.Blobs[md.Digest] = cb, mb
	f.seed.Add("docker.io/library/wrong:diffid", md, nil)
	p := f.write(t, "oci-dir")
	errs := openSeed(t, p).Verify(context.Background(), layerlimit.Default())
	if len(errs) != 1 {
		t.Fatalf("verify: %v", errs)
	}
	wantMsg(t, errs[0], "seed "+p, f.demo.Layers[0].Digest.String(), "diffID mismatch: config "+m.Config.Digest.String()+" expects "+cfg.RootFS.DiffIDs[0].String())
}

func TestBadArchives(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dir := t.TempDir()
	full, err := os.ReadFile(f.write(t, "oci-tar"))
	if err != nil {
		t.Fatal(err)
	}
	man := f.demo.Manifest
	manBytes := f.blobs[man.Digest]
	big := bytes.Repeat([]byte(" "), MaxJSONSize+1)

	for _, tc := range []struct {
		name  string
		data  []byte
		parts []string
	}{
		{"truncated", full[:len(full)/2], []string{"truncated archive"}},
		{"not-a-tar", []byte(strings.Repeat("hello, I am not a tar\n", 100)), []string{"not a tar archive"}},
		{"empty", nil, []string{"no entries"}},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}, []string{"xz-compressed seeds are not read"}},
		{"broken-index", testutil.RawTar(t, rawEntry{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, rawEntry{Name: "index.json", Body: []byte(`{"manifests": [`)}), []string{"index.json", "not a valid image index"}},
		{"huge-index", testutil.RawTar(t, rawEntry{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, rawEntry{Name: "index.json", Body: big}), []string{"index.json", "exceeds the 33554432 byte cap"}},
		{"no-layout", testutil.RawTar(t, rawEntry{Name: "hello", Body: []byte("x")}), []string{"not an image archive"}},
		{"layout-version", testutil.RawTar(t, rawEntry{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"9"}`)}), []string{"unsupported layout version"}},
		{"index-is-symlink-out", testutil.RawTar(t, rawEntry{Name: "oci-layout", Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, rawEntry{Name: "index.json", Type: tar.TypeSymlink, Link: "/etc/passwd"}), []string{"index.json", "outside the archive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testutil.WriteFile(t, filepath.Join(dir, tc.name), tc.data)
			_, err := Open(ctx, p)
			wantMsg(t, err, append([]string{"seed " + p}, tc.parts...)...)
		})
	}

	// Entries that try to leave the archive are never served.
	for _, tc := range []struct {
		name  string
		entry rawEntry
		parts []string
	}{
		{"symlink-abs", rawEntry{Name: blobPath(man.Digest), Type: tar.TypeSymlink, Link: "/etc/passwd"}, []string{"outside the archive"}},
		{"symlink-up", rawEntry{Name: blobPath(man.Digest), Type: tar.TypeSymlink, Link: "../../../../etc/passwd"}, []string{"outside the archive"}},
		{"hardlink-up", rawEntry{Name: blobPath(man.Digest), Type: tar.TypeLink, Link: "../etc/passwd"}, []string{"outside the archive"}},
		{"dotdot-name", rawEntry{Name: "blobs/sha256/../sha256/" + man.Digest.Encoded(), Body: manBytes}, []string{"path leaves the archive"}},
		{"device", rawEntry{Name: blobPath(man.Digest), Type: tar.TypeChar}, []string{"not a regular file"}},
		{"fifo", rawEntry{Name: blobPath(man.Digest), Type: tar.TypeFifo}, []string{"not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testutil.WriteFile(t, filepath.Join(dir, tc.name), layoutWith(t, man, tc.entry))
			s := openSeed(t, p)
			_, err := s.Fetch(ctx, man)
			wantMsg(t, err, append([]string{"seed " + p, man.Digest.String()}, tc.parts...)...)
		})
	}
}

func TestBadDirectories(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	p := f.write(t, "oci-dir")
	man := f.demo.Manifest
	blob := filepath.Join(p, blobPath(man.Digest))
	os.Remove(blob)
	if err := os.Symlink("/etc/passwd", blob); err != nil {
		t.Fatal(err)
	}
	s := openSeed(t, p)
	_, err := s.Fetch(ctx, man)
	wantMsg(t, err, "seed "+p, man.Digest.String())
	if errdefs.IsNotFound(err) {
		t.Errorf("a symlink out of the seed looked merely missing: %v", err)
	}

	// A FIFO where a blob file is expected must not block.
	os.Remove(blob)
	if err := syscall.Mkfifo(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(ctx, man)
	wantMsg(t, err, "seed "+p, man.Digest.String(), "not a regular file")

	// A FIFO as the seed itself.
	fifo := filepath.Join(t.TempDir(), "seed.tar")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, fifo)
	wantMsg(t, err, "seed "+fifo, "not a regular file or directory")
}

// The index of a tar seed is capped: entries, one name's length, and all
// names together; each is refused with one line, as it is read.
func TestIndexCaps(t *testing.T) {
	stream := func(n int, name func(i int) string) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			for i := range n {
				if err := tw.WriteHeader(&tar.Header{Name: name(i), Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(tw.Close())
		}()
		return pr
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"entries", stream(MaxEntries+1, func(i int) string { return strconv.Itoa(i) }), "more than 262144 entries"},
		{"name-length", stream(1, func(int) string { return strings.Repeat("n", MaxNameLen+1) }), "beyond the 4096 byte cap"},
		{"name-bytes", stream(MaxNameBytes/4000+1, func(i int) string { return fmt.Sprintf("%04000d", i) }), "entry names beyond 33554432 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := indexTar(tc.r)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("indexTar: %v; want %q", err, tc.want)
			}
			io.Copy(io.Discard, tc.r) // let the writer end
		})
	}
}
