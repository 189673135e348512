package test

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"
)

const inProcessMsg = "applying layer in process"

// TestAppliedTreesMatchCtr imports one seed with ctr, with ctr-seed's
// in-process applier and with ctr-seed --daemon-apply, and requires the
// three unpacked trees to be identical, entry by entry, attribute by
// attribute.
func TestAppliedTreesMatchCtr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		docker bool // a docker save tarball instead of an OCI layout
		c      testseed.Compression
	}{
		{"oci-gzip", false, testseed.Gzip},
		{"oci-zstd", false, testseed.Zstd},
		{"docker-save", true, testseed.Gzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			b := appliedImage(t, "registry.local/applied/"+tc.name+":1", tc.docker, tc.c)
			var seed string
			if tc.docker {
				seed = writeDocker(t, []testseed.DockerImage{{RepoTags: []string{b.Name}, Built: b}}, testseed.Uncompressed)
			} else {
				seed = writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
			}
			base := namespace(t)
			nsCtr, nsSeed, nsDaemon := base+"-ctr", base+"-seed", base+"-daemon"

			ctr(t, nsCtr, "images", "import", seed)
			r := ctrSeedRun(t, nsSeed, "--debug", "import", seed)
			if n := strings.Count(r.stderr, inProcessMsg); r.code != 0 || n != len(b.DiffIDs) {
				t.Fatalf("ctr-seed --debug import: exit %d, %q logged %d times, want 0 and once a layer (%d)\nstderr: %s",
					r.code, inProcessMsg, n, len(b.DiffIDs), r.stderr)
			}
			r = ctrSeedRun(t, nsDaemon, "--debug", "import", "--daemon-apply", seed)
			if r.code != 0 || strings.Contains(r.stderr, inProcessMsg) {
				t.Fatalf("ctr-seed --debug import --daemon-apply: exit %d, want 0 and no %q\nstderr: %s", r.code, inProcessMsg, r.stderr)
			}

			want := appliedTree(t, nsCtr, b.Name, start)
			appliedSane(t, want)
			for _, ns := range []string{nsSeed, nsDaemon} {
				if got := appliedTree(t, ns, b.Name, start); !slices.Equal(got, want) {
					t.Errorf("%s: tree differs from ctr's (%d entries, ctr's %d):\n%s", ns, len(got), len(want), appliedDiff(want, got))
				}
			}
		})
	}
}

// appliedImage is testseed.Standard plus a layer unique to the test that
// adds what Standard lacks: special mode bits, a fifo, an absolute and a
// dangling symlink, a three-way hardlink, a directory whiteout, a
// symlink replaced by a file, and files under implied directories (some
// existing in lower layers, some not).
func appliedImage(t *testing.T, name string, docker bool, c testseed.Compression) *testseed.Built {
	t.Helper()
	img := testseed.Standard(name, impHostPlatform(), docker, c)
	f := func(n, content string, mode int64) testseed.File {
		return testseed.File{Name: n, Content: []byte(content), Mode: mode}
	}
	img.Layers = append(img.Layers, testseed.Layer{Compression: c, Files: []testseed.File{
		f("etc/test-name", t.Name()+" "+name, 0),
		testseed.Whiteout("etc/demo.d"),
		testseed.Whiteout("bin/hi"),
		f("bin/hi", "#!/bin/sh\necho replaced\n", 0o755),
		{Name: "opt", Type: tar.TypeDir, Mode: 0o1777},
		f("opt/suid", "setuid\n", 0o4755),
		f("opt/private", "secret\n", 0o600),
		f("opt/empty", "", 0),
		{Name: "opt/sgid", Type: tar.TypeDir, Mode: 0o2775},
		{Name: "opt/fifo", Type: tar.TypeFifo},
		{Name: "opt/abs-link", Type: tar.TypeSymlink, Linkname: "/etc/hello.conf"},
		{Name: "opt/dangling", Type: tar.TypeSymlink, Linkname: "../missing"},
		f("opt/hl-a", "three names, one inode\n", 0o640),
		{Name: "opt/hl-b", Type: tar.TypeLink, Linkname: "opt/hl-a"},
		{Name: "opt/sgid/hl-c", Type: tar.TypeLink, Linkname: "opt/hl-a"},
		f("usr/share/demo/deep/er/file", "under implied dirs\n", 0),
		f("usr/local/lib/file", "under new implied dirs\n", 0),
	}})
	b := testutil.Build(t, img)
	return b
}

// appliedTree mounts a read-only view of name's top snapshot in ns and
// describes every entry in one line. Times at or after start were set
// from the clock during the import (the root, directories created
// implicitly), so they are written as "recent"; any other time is exact.
// Directory sizes depend on the file system's history, not the tree, and
// are left out; atime and ctime are never compared.
func appliedTree(t *testing.T, ns, name string, start time.Time) []string {
	t.Helper()
	c, ctx := dclient(t), nsCtx(ns)
	img, err := c.GetImage(ctx, name)
	if err != nil {
		t.Fatalf("%s: %v (images: %v)", ns, err, keys(imageMap(t, ns)))
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil || len(diffIDs) == 0 {
		t.Fatalf("%s: rootfs %v: %v", ns, diffIDs, err)
	}
	root := impViewSnapshot(t, c, ctx, identity.ChainID(diffIDs).String())

	// Stat everything first: reading contents changes atimes.
	type entry struct {
		rel string
		st  unix.Stat_t
	}
	var ents []entry
	err = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		ents = append(ents, entry{rel: rel})
		return unix.Lstat(p, &ents[len(ents)-1].st)
	})
	if err != nil {
		t.Fatal(err)
	}

	recent := start.Add(-2 * time.Second).UnixNano()
	firstOf := map[[2]uint64]string{} // dev, inode -> first path
	var out []string
	for _, e := range ents {
		p, st := filepath.Join(root, e.rel), e.st
		mtime := fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		if st.Mtim.Nano() >= recent {
			mtime = "recent"
		}
		line := fmt.Sprintf("%s mode=%07o uid=%d gid=%d mtime=%s", e.rel, st.Mode, st.Uid, st.Gid, mtime)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			line += fmt.Sprintf(" size=%d sha256=%x", st.Size, sha256.Sum256(data))
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			line += fmt.Sprintf(" size=%d -> %s", st.Size, l)
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			line += fmt.Sprintf(" size=%d", st.Size)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			line += fmt.Sprintf(" nlink=%d", st.Nlink)
			k := [2]uint64{st.Dev, st.Ino}
			if first, ok := firstOf[k]; ok {
				line += " link=" + first
			} else {
				firstOf[k] = e.rel
			}
		}
		line += " xattrs=" + appliedXattrs(t, p)
		out = append(out, line)
	}
	return out
}

// appliedXattrs lists p's extended attributes (not following symlinks),
// sorted, as name=value.
func appliedXattrs(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil && err != unix.ENOTSUP {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var attrs []string
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, k, err)
		}
		attrs = append(attrs, fmt.Sprintf("%s=%q", k, v[:m]))
	}
	sort.Strings(attrs)
	return "[" + strings.Join(attrs, ",") + "]"
}

// appliedSane fails a description too poor to prove anything.
func appliedSane(t *testing.T, tree []string) {
	t.Helper()
	all := strings.Join(tree, "\n")
	if len(tree) < 30 {
		t.Errorf("only %d entries:\n%s", len(tree), all)
	}
	for _, want := range []string{"opt/abs-link mode=0120777 ", " link=usr/share/demo/notes-link.txt ", " link=opt/hl-a ", "opt/fifo mode=0010644 ",
		"opt/suid mode=0104755 ", "opt mode=0041777 ", "bin/hi mode=0100755 ", "mtime=1704067200.000000000 "} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in the tree:\n%s", want, all)
		}
	}
	for _, gone := range []string{".wh.", "remove-me.txt", "state/a ", "etc/demo.d"} {
		if strings.Contains(all, gone) {
			t.Errorf("%q in the tree:\n%s", gone, all)
		}
	}
}

// appliedDiff shows the first differing line and the lines only one side has.
func appliedDiff(want, got []string) string {
	var sb strings.Builder
	w, g := append(slices.Clone(want), "<end>"), append(slices.Clone(got), "<end>")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			fmt.Fprintf(&sb, "first difference at line %d:\n  ctr:  %s\n  this: %s\n", i, w[i], g[i])
			break
		}
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&sb, "only ctr's: %s\n", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&sb, "only this:  %s\n", l)
		}
	}
	return sb.String()
}
