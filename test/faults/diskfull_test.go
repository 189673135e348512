package faults_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/test/harness"
	"golang.org/x/sys/unix"
)

// ---- 5. disk full ----

// tmpfsSize is the daemon root's size in TestDiskFull: well below the
// seed's big layer, which therefore cannot be written.
const tmpfsSize = 64 << 20

// mountTmpfs mounts a tmpfs of size bytes on d.Root while d is stopped;
// at cleanup it stops d and unmounts. Being under the daemon's dir, the
// mount is also found by the harness's cleanup and its sweep of dirs left
// by a test process that died.
func mountTmpfs(t *testing.T, d *harness.Daemon, size int64) {
	t.Helper()
	if err := unix.Mount("tmpfs", d.Root, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0711", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", d.Root, err)
	}
	t.Cleanup(func() {
		// Cleanups run last-registered first: the daemon's own cleanup
		// comes after this one, so stop it here to unmount a quiet fs.
		d.Stop(t)
		if err := unix.Unmount(d.Root, 0); err != nil {
			t.Errorf("unmount %s: %v", d.Root, err)
		}
	})
}

func remountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("remount tmpfs on %s: %v", dir, err)
	}
}

// used is how many bytes of the filesystem at dir are in use.
func used(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// TestDiskFull: containerd's root is a 64 MiB tmpfs and the seed's big
// layer is 128 MiB. The import fails with exit 1 and one line naming the
// image and the cause, leaves nothing behind (the partial write is freed),
// and once there is room the same import succeeds.
func TestDiskFull(t *testing.T) {
	if seed.Big.Size <= tmpfsSize {
		t.Fatalf("the big layer (%d bytes) must not fit in %d bytes", seed.Big.Size, tmpfsSize)
	}
	// The daemon's root becomes a small tmpfs: stop it, mount, start it
	// again on the empty fs.
	d := startDaemon(t, harness.DaemonOptions{})
	d.Stop(t)
	mountTmpfs(t, d, tmpfsSize)
	d.Restart(t)
	root := d.Root
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Join(root, "io.containerd.content.v1.content"), &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("containerd's content store is not on the tmpfs: type %#x, %v", fs.Type, err)
	}
	c := d.Client(t)
	ns := "diskfull"
	before := used(t, root)

	r := run(t, d, ns, "import", seed.Path)
	t.Logf("on a full disk: %s", r)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
	el := assertFailedOutput(t, r, "which did not fit")
	if len(el) != 1 || !strings.HasPrefix(el[0], imageLine()) || !strings.Contains(el[0], "no space left on device") {
		t.Errorf("stderr:\n%s\nwant one line starting %q and saying \"no space left on device\"", r.Stderr, imageLine())
	}
	assertNothingLeft(t, c, ns)
	after := used(t, root)
	t.Logf("tmpfs use: %d KiB before, %d KiB after the failed import", before>>10, after>>10)
	if after > before+4<<20 {
		t.Errorf("the failed import's partial write was not freed: %d KiB in use, %d KiB before", after>>10, before>>10)
	}

	remountTmpfs(t, root, 512<<20)
	r2 := mustImport(t, d, ns)
	if r2.Stderr != "" {
		t.Errorf("import after the remount: stderr %q", r2.Stderr)
	}
	assertImported(t, c, ns)
}
