package applier

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/continuity/sysx"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// These tests apply the same layers with containerd's archive.Apply and
// with the fast path, each into an empty directory, and require the two
// trees to be identical: types, modes, owners, times, contents, link
// targets, hardlink groups, device numbers, xattrs. They need root.

type ent struct {
	name  string
	typ   byte
	mode  int64
	body  string
	link  string
	uid   int
	gid   int
	mtime time.Time
	atime time.Time
	xattr map[string]string
	dev   [2]int64
}

var t0 = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

func layer(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid,
			ModTime: e.mtime, AccessTime: e.atime, Format: tar.FormatPAX, Devmajor: e.dev[0], Devminor: e.dev[1]}
		if e.dev[0] > 1<<21 {
			h.Format = tar.FormatGNU // PAX cannot say it
		}
		if h.ModTime.IsZero() {
			h.ModTime = t0
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattr {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dir(n string, mode int64) ent { return ent{name: n, typ: tar.TypeDir, mode: mode} }
func file(n, body string) ent      { return ent{name: n, typ: tar.TypeReg, mode: 0o644, body: body} }
func symlink(n, target string) ent {
	return ent{name: n, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(n, target string) ent {
	return ent{name: n, typ: tar.TypeLink, mode: 0o644, link: target}
}
func withMode(e ent, m int64) ent     { e.mode = m; return e }
func withOwner(e ent, u, g int) ent   { e.uid, e.gid = u, g; return e }
func withTime(e ent, m time.Time) ent { e.mtime = m; return e }

var cases = map[string][]ent{
	"basic": {
		dir("etc", 0o755), file("etc/hosts", "127.0.0.1 localhost\n"), withMode(file("etc/shadow", "x"), 0o640),
		dir("usr", 0o755), dir("usr/bin", 0o755), withMode(file("usr/bin/su", "su"), 0o4755),
		withMode(file("usr/bin/wall", "w"), 0o2755), withOwner(file("usr/bin/owned", "o"), 1000, 1001),
		withMode(dir("tmp", 0o777), 0o1777), withMode(file("usr/bin/g-w", "x"), 0o666),
		symlink("bin", "usr/bin"), symlink("abs", "/etc/hosts"), symlink("dangling", "/no/such"),
		withOwner(symlink("usr/owned-link", "bin"), 7, 8),
		hardlink("etc/hosts2", "etc/hosts"), hardlink("usr/bin/su2", "/usr/bin/su"),
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, dev: [2]int64{1, 3}},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, dev: [2]int64{8, 0}, gid: 6},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "xa", typ: tar.TypeReg, mode: 0o644, xattr: map[string]string{"user.one": "1", "trusted.no": "x"}},
		{name: "xd", typ: tar.TypeDir, mode: 0o755, xattr: map[string]string{"user.dir": "d"}},
		{name: "old", typ: tar.TypeReg, mode: 0o644, mtime: time.Unix(-100, 0)},
		{name: "atime", typ: tar.TypeReg, mode: 0o644, mtime: t0, atime: t0.Add(time.Hour)},
		withTime(dir("late", 0o700), t0.Add(-time.Hour)), file("late/inside", "i"),
	},
	"implicit-parents": {
		file("a/b/c/d", "deep"), file("a/b/x", "x"), dir("a/b", 0o711), file("z/y", "y"),
	},
	"setgid-dir": {
		withOwner(withMode(dir("shared", 0o2775), 0o2775), 0, 50), file("shared/f", "f"), dir("shared/sub", 0o755),
		file("shared/sub/g", "g"), file("shared/implicit/h", "h"),
	},
	"duplicates": {
		file("f", "one"), file("f", "two"), dir("d", 0o755), file("d/x", "x"), file("d", "now a file"),
		file("e", "file"), dir("e", 0o750), dir("e", 0o700), symlink("s", "f"), file("s", "over a link"),
	},
	"whiteouts": {
		dir("a", 0o755), file("a/keep", "k"), file("a/.wh.gone", ""), file(".wh.top", ""),
		dir("o", 0o755), file("o/.wh..wh..opq", ""), file("o/new", "n"), file("p/q/.wh.r", ""),
		file("late/x", "x"), file("late/.wh..wh..opq", ""), file(".wh..wh..opq", ""),
	},
	"traversal": {
		file("../../escape", "no"), file("/abs/file", "a"), symlink("up", "../../.."), file("up/through", "t"),
		symlink("etclink", "/etc"), file("etclink/passwd", "scoped"), dir("real", 0o755),
		symlink("real/loop", "../real"), file("real/loop/loop/in", "in"), hardlink("hl", "../../etc/passwd"),
		file("./dot/./x", "x"), dir("./", 0o700),
	},
}

func TestTreeMatchesArchiveApply(t *testing.T) {
	needRoot(t)
	for name, ents := range cases {
		for _, overlay := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/overlay=%v", name, overlay), func(t *testing.T) {
				compareApply(t, layer(t, ents...), overlay, nil)
			})
		}
	}
}

// Implicit parents take a lower layer's attributes, as archive.Apply's mkparent.
func TestTreeCopiesUpLowerDirs(t *testing.T) {
	needRoot(t)
	lower := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(lower, "a/b"), 0o700))
	must(t, os.Chown(filepath.Join(lower, "a"), 33, 44))
	must(t, os.Chmod(filepath.Join(lower, "a"), 0o750))
	must(t, unix.Lsetxattr(filepath.Join(lower, "a"), "user.up", []byte("v"), 0))
	must(t, os.Chtimes(filepath.Join(lower, "a"), t0, t0))
	must(t, os.Symlink("a", filepath.Join(lower, "ln")))
	compareApply(t, layer(t, file("a/b/c/f", "f"), file("ln/x", "x")), true, []string{lower})
}

// A layer both reject must be rejected by each; one both accept, the same.
func TestTreeErrorsMatch(t *testing.T) {
	needRoot(t)
	bad := map[string][]ent{
		"whiteout-dotdot":  {file("a/.wh...", "")},
		"file-as-parent":   {file("f", "x"), file("f/g", "y")},
		"link-to-dir":      {dir("d", 0o755), hardlink("l", "d")},
		"link-to-missing":  {hardlink("l", "nope")},
		"device-range":     {{name: "c", typ: tar.TypeChar, mode: 0o600, dev: [2]int64{1 << 33, 0}}},
		"whiteout-of-made": {file("w", "x"), file(".wh.w", "")},
	}
	for name, ents := range bad {
		t.Run(name, func(t *testing.T) {
			l := layer(t, ents...)
			a, b := t.TempDir(), t.TempDir()
			_, errA := archive.Apply(context.Background(), a, bytes.NewReader(l), archive.WithConvertWhiteout(archive.OverlayConvertWhiteout))
			errB := fastApply(b, l, true, nil)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("archive.Apply: %v; fast path: %v", errA, errB)
			}
			t.Logf("archive.Apply: %v; fast path: %v", errA, errB)
		})
	}
}

func compareApply(t *testing.T, l []byte, overlay bool, parents []string) {
	t.Helper()
	a, b := t.TempDir(), t.TempDir()
	var opts []archive.ApplyOpt
	if overlay {
		opts = append(opts, archive.WithConvertWhiteout(archive.OverlayConvertWhiteout))
	}
	if len(parents) > 0 {
		opts = append(opts, archive.WithParents(parents))
	}
	if _, err := archive.Apply(context.Background(), a, bytes.NewReader(l), opts...); err != nil {
		t.Fatalf("archive.Apply: %v", err)
	}
	if err := fastApply(b, l, overlay, parents); err != nil {
		t.Fatalf("fast path: %v", err)
	}
	want, got := snapshot(t, a), snapshot(t, b)
	if want == got {
		return
	}
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			t.Errorf("line %d:\n archive.Apply: %s\n fast path:     %s", i, w, g)
		}
	}
}

func fastApply(root string, l []byte, overlay bool, parents []string) error {
	tr, err := newTree(context.Background(), root, parents, overlay, processUmask())
	if err != nil {
		return err
	}
	defer tr.close()
	_, err = tr.apply(bytes.NewReader(l))
	return err
}

// snapshot describes every file under root, one line each, in order.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	inodes := map[uint64]string{}
	var lines []string
	type read struct {
		line int
		path string
	}
	var reads []read
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d mtime=%s atime=%s", rel, st.Mode, st.Uid, st.Gid, ts(st.Mtim), ts(st.Atim))
		if rel == "." {
			line = fmt.Sprintf(". mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid) // the root's times move with its entries
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			reads = append(reads, read{len(lines), p}) // after every stat: reading moves atime
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					line += " same-inode-as=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		keys, _ := sysx.LListxattr(p)
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := sysx.LGetxattr(p, k)
			line += fmt.Sprintf(" %s=%q", k, v)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		b, err := os.ReadFile(r.path)
		if err != nil {
			t.Fatal(err)
		}
		lines[r.line] += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
	}
	return strings.Join(lines, "\n")
}

// ts prints a time, or "now" for one the apply took from the clock (an
// implicit directory's), which no two applies share.
func ts(t unix.Timespec) string {
	if t.Sec > time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix() {
		return "now"
	}
	return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it makes devices, sets owners and trusted.* xattrs, as the snapshotter does")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A sparse entry is held to the layer cap by the size it declares: the
// applier refuses it before writing the file, with the one cap error.
func TestTreeCapsSparseFiles(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	tr, err := newTree(context.Background(), root, nil, true, processUmask())
	must(t, err)
	defer tr.close()
	l := testutil.SparseTar(t, "big", 3<<29)
	c, ok := layerlimit.Default().Cap(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(l), Size: int64(len(l))})
	if !ok {
		t.Fatal("no cap")
	}
	tr.written = c.Written
	if _, err := tr.apply(bytes.NewReader(l)); !errors.Is(err, layerlimit.ErrBomb) {
		t.Fatalf("apply: %v; want the cap", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "big")); err == nil {
		t.Error("the sparse file was written")
	}
}
