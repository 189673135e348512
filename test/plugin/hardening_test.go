package plugin_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	"golang.org/x/sys/unix"
)

// TestPluginNeverOpensDeviceNodes: a FIFO and a symlink to a character
// device in the seeds dir are refused without being opened (opening a
// watchdog or a tape has side effects): inotify sees no open of either
// node, at boot or when one is dropped in while running.
func TestPluginNeverOpensDeviceNodes(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	nodes := t.TempDir()
	fifo := filepath.Join(seeds, "tape.tar")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(nodes, "null-clone")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dev, filepath.Join(seeds, "watchdog.tar")); err != nil {
		t.Fatal(err)
	}
	later := filepath.Join(nodes, "later.tar")
	if err := unix.Mkfifo(later, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	for _, p := range []string{fifo, dev, later} {
		if _, err := unix.InotifyAddWatch(in, p, unix.IN_OPEN); err != nil {
			t.Fatalf("inotify %s: %v", p, err)
		}
	}

	pd := startPlugin(t, seeds, harness.DaemonOptions{DisableCRI: true})
	for _, name := range []string{"tape.tar", "watchdog.tar"} {
		waitFor(t, importWait, name+" refused at boot", func() error {
			if len(errorLines(pd.d.Log(), name)) == 0 {
				return fmt.Errorf("no error line for %s yet", name)
			}
			return nil
		})
	}
	if err := os.Rename(later, filepath.Join(seeds, "later.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, importWait, "later.tar refused once dropped in", func() error {
		if len(errorLines(pd.d.Log(), "later.tar")) == 0 {
			return fmt.Errorf("no error line for later.tar yet")
		}
		return nil
	})
	buf := make([]byte, 4096)
	if n, err := unix.Read(in, buf); n > 0 {
		t.Errorf("a node in the seeds dir was opened (%d bytes of inotify events)", n)
	} else if err != unix.EAGAIN {
		t.Fatalf("reading inotify: %v", err)
	}
	for _, name := range []string{"tape.tar", "watchdog.tar", "later.tar"} {
		if el := errorLines(pd.d.Log(), name); !strings.Contains(strings.Join(el, "\n"), "not a regular file or directory") {
			t.Errorf("%s: error lines %q; want \"not a regular file or directory\"", name, el)
		}
	}
	pd.assertServing(t)
}

// TestPluginLayoutDirCopiedSlowly: an OCI layout directory copied into the
// seeds dir in place, its metadata first and its blobs after a pause
// longer than a file's quiet period (a slow stick; cp -a keeps the old
// mtimes), is read only once complete: imported once, no error line.
func TestPluginLayoutDirCopiedSlowly(t *testing.T) {
	t.Parallel()
	seeds := newSeedsDir(t)
	pd := startPlugin(t, seeds, harness.DaemonOptions{DisableCRI: true})
	img := uniqueImage(t, "docker.io/ctrseed-test/slow-dir:1", false, testseed.Gzip)
	var s testseed.Seed
	s.Add(img.Name, img.Manifest, img.Blobs)
	src := filepath.Join(t.TempDir(), "layout")
	if err := s.WriteOCIDir(src); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	dst := filepath.Join(seeds, "slow-layout")
	copyTree := func(blobs bool) {
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			isBlob := strings.HasPrefix(rel, "blobs"+string(filepath.Separator)+"sha256"+string(filepath.Separator))
			target := filepath.Join(dst, rel)
			switch {
			case d.IsDir():
				return os.MkdirAll(target, 0o755)
			case isBlob != blobs:
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, 0o644); err != nil {
				return err
			}
			return os.Chtimes(target, old, old)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	copyTree(false) // oci-layout, index.json
	time.Sleep(2 * time.Second)
	copyTree(true)
	waitFor(t, importWait, "the layout dir imported once complete", func() error {
		return checkImage(pd.c, pd.ns, img.Name, pd.labels)
	})
	if el := errorLines(pd.d.Log(), "slow-layout"); len(el) > 0 {
		t.Errorf("the layout dir was read half-way:\n%s", strings.Join(el, "\n"))
	}
	if n := imported(pd.d.Log(), "slow-layout"); n != 1 {
		t.Errorf("%d \"seed imported\" lines, want 1", n)
	}
}
