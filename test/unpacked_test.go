package test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
)

// TestImportUnpackedTree mounts the unpacked image and checks the tree
// testseed.Standard documents: whiteouts, opaque dir, hardlink, symlink.
func TestImportUnpackedTree(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "registry.local/tree/standard:1", impHostPlatform(), false, testseed.Gzip)
	mustImport(t, ns, writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed))

	c, ctx := dclient(t), nsCtx(ns)
	img, err := c.GetImage(ctx, b.Name)
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(diffIDs, b.DiffIDs) {
		t.Fatalf("rootfs %v, built %v", diffIDs, b.DiffIDs)
	}
	root := impViewSnapshot(t, c, ctx, identity.ChainID(diffIDs).String())

	// Every non-directory entry of the tree, with what it must be.
	got := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "-> " + l
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = string(b)
		default:
			got[rel] = "type " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	std := testutil.Build(t, testseed.Standard("", impHostPlatform(), false, testseed.Uncompressed))
	layerFiles := map[string]string{} // content as the standard layers' tars hold it
	for _, d := range std.DiffIDs {
		for n, c := range impTarFiles(t, std.Uncompressed[d]) {
			layerFiles[n] = c
		}
	}
	want := map[string]string{
		"bin/hello":                     layerFiles["bin/hello"],
		"bin/hi":                        "-> hello",
		"etc/hello.conf":                "greeting=hello again\nversion=2\n", // layer 2 rewrote it
		"etc/platform":                  "linux/" + runtime.GOARCH + "\n",
		"etc/demo.d/extra.conf":         "extra=true\n",
		"etc/test-name":                 t.Name() + " " + b.Name + " " + runtime.GOARCH,
		"usr/share/demo/data.txt":       layerFiles["usr/share/demo/data.txt"],
		"usr/share/demo/more.txt":       layerFiles["usr/share/demo/more.txt"],
		"usr/share/demo/notes.txt":      layerFiles["usr/share/demo/notes.txt"],
		"usr/share/demo/notes-link.txt": layerFiles["usr/share/demo/notes.txt"],
		"var/lib/demo/state/fresh":      "fresh from layer 3\n",
	}
	for n, w := range want {
		if w == "" {
			t.Fatalf("expected content of %s unknown", n)
		}
		if got[n] != w {
			t.Errorf("%s = %q, want %q", n, got[n], w)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected entry %s (%q)", n, got[n])
		}
	}
	// Whiteout and opaque dir, and no whiteout markers leaked.
	for _, gone := range []string{"usr/share/demo/remove-me.txt", "var/lib/demo/state/a", "var/lib/demo/state/b"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should be deleted, Lstat: %v", gone, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(root, "var/lib/demo/state"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "fresh" {
		t.Errorf("opaque dir holds %v, want only fresh", ents)
	}
	// The hardlink shares the inode.
	fi1, err1 := os.Stat(filepath.Join(root, "usr/share/demo/notes.txt"))
	fi2, err2 := os.Stat(filepath.Join(root, "usr/share/demo/notes-link.txt"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !os.SameFile(fi1, fi2) {
		t.Errorf("notes-link.txt is not a hardlink of notes.txt (inodes %d, %d)", fi1.Sys().(*syscall.Stat_t).Ino, fi2.Sys().(*syscall.Stat_t).Ino)
	}
	if n := fi1.Sys().(*syscall.Stat_t).Nlink; n != 2 {
		t.Errorf("notes.txt nlink %d, want 2", n)
	}
	if fi, err := os.Stat(filepath.Join(root, "bin/hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/hello: %v %v, want mode 0755", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "bin/hi")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("bin/hi is not a symlink: %v %v", fi, err)
	}
}

// impViewSnapshot mounts a read-only view of the committed snapshot parent
// and returns where; everything is undone at cleanup.
func impViewSnapshot(t *testing.T, c *client.Client, ctx context.Context, parent string) string {
	t.Helper()
	sn := c.SnapshotService("overlayfs")
	key := "ctr-seed-test-view-" + digest.FromString(t.Name()).Encoded()[:12]
	mounts, err := sn.View(ctx, key, parent)
	if err != nil {
		t.Fatalf("view of %s: %v", parent, err)
	}
	t.Cleanup(func() {
		if err := sn.Remove(ctx, key); err != nil {
			t.Errorf("removing view: %v", err)
		}
	})
	dir := t.TempDir()
	if err := mount.All(mounts, dir); err != nil {
		t.Fatalf("mount %v: %v", mounts, err)
	}
	t.Cleanup(func() {
		if err := mount.UnmountAll(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
