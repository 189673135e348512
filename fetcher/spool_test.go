package fetcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/pierrec/lz4/v4"
)

var spoolCodecs = []struct {
	name string
	c    testseed.Compression
}{{"gzip", testseed.Gzip}, {"zstd", testseed.Zstd}}

// compressedSeed compresses tarball as a whole and writes it as a seed;
// it returns the seed's path.
func compressedSeed(t *testing.T, tarball []byte, c testseed.Compression) string {
	t.Helper()
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.bin"), testutil.Archive(t, c, testutil.Bytes(tarball)))
}

// countSpool counts the bytes that reach spool files until the test ends.
func countSpool(t *testing.T) *int64 {
	var n int64
	old := wrapSpool
	wrapSpool = func(f *os.File) io.Writer {
		return writerFunc(func(p []byte) (int, error) { n += int64(len(p)); return f.Write(p) })
	}
	t.Cleanup(func() { wrapSpool = old })
	return &n
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// assertEmptyDir fails unless dir holds nothing: the spool is unlinked.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		t.Errorf("left in the spool dir: %s", e.Name())
	}
}

// assertSpoolCapError checks the refusal of a seed past the cap.
func assertSpoolCapError(t *testing.T, err error, seed, codec string, limit int64) {
	t.Helper()
	if err == nil {
		t.Fatalf("opened, want refusal past the %d byte spool cap", limit)
	}
	msg := err.Error()
	for _, want := range []string{
		"seed " + seed + ": ",
		"decompressed " + codec + " archive exceeds the spool cap",
		fmt.Sprintf("expected at most %d bytes, got more", limit),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("error %q is not invalid argument", msg)
	}
}

// TestSpoolCap opens a gzip and a zstd OCI tar seed under caps around its
// exact uncompressed size: one byte short is refused, leaving nothing in
// the spool dir; at and just above it, the seed opens and serves blobs.
func TestSpoolCap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var tarball bytes.Buffer
	if err := f.seed.WriteOCITar(&tarball); err != nil {
		t.Fatal(err)
	}
	size := int64(tarball.Len())
	for _, sc := range spoolCodecs {
		t.Run(sc.name, func(t *testing.T) {
			path := compressedSeed(t, tarball.Bytes(), sc.c)
			if fi, _ := os.Stat(path); fi.Size() >= size {
				t.Fatalf("compressed seed is %d bytes, not smaller than its %d byte tar", fi.Size(), size)
			}

			t.Run("past the cap", func(t *testing.T) {
				spool, written := t.TempDir(), countSpool(t)
				s, err := Open(ctx, path, WithSpoolDir(spool), WithMaxSpoolBytes(size-1))
				if err == nil {
					s.Close()
				}
				assertSpoolCapError(t, err, path, sc.name, size-1)
				if *written > size-1 {
					t.Errorf("%d bytes reached the spool, past the %d byte cap", *written, size-1)
				}
				assertEmptyDir(t, spool)
			})

			for _, limit := range []int64{size, size + 1, 0} {
				t.Run(fmt.Sprintf("cap %d", limit), func(t *testing.T) {
					spool, written := t.TempDir(), countSpool(t)
					s, err := Open(ctx, path, WithSpoolDir(spool), WithMaxSpoolBytes(limit))
					if err != nil {
						t.Fatalf("tar of %d bytes under a %d byte cap: %v", size, limit, err)
					}
					if *written != size {
						t.Errorf("spooled %d bytes, want the tar's %d", *written, size)
					}
					assertEmptyDir(t, spool) // unlinked while open
					imgs, err := s.Images(ctx)
					if err != nil || len(imgs) != 3 {
						t.Fatalf("images %v, %v; want 3", imgs, err)
					}
					desc := f.demo.Manifest
					if got := readAll(t, s, desc); !bytes.Equal(got, f.blobs[desc.Digest]) {
						t.Errorf("blob %s: %d bytes differ from the seed's", desc.Digest, len(got))
					}
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					assertEmptyDir(t, spool)
				})
			}
		})
	}
}

// TestSpoolBomb: a few KB that expand to 32 MiB of zeros in one tar entry
// are refused once 1 MiB is spooled, not after all of it; with no cap
// (0) the whole stream is spooled and the seed fails for what it is.
func TestSpoolBomb(t *testing.T) {
	const zeros, limit = 32 << 20, 1 << 20
	bomb := testutil.RawTar(t, testutil.RawEntry{Name: "blobs/sha256/zeros", Body: make([]byte, zeros)})
	for _, sc := range spoolCodecs {
		t.Run(sc.name, func(t *testing.T) {
			path := compressedSeed(t, bomb, sc.c)
			if fi, _ := os.Stat(path); fi.Size() > zeros/100 {
				t.Fatalf("bomb is %d bytes compressed, not a bomb", fi.Size())
			}
			spool, written := t.TempDir(), countSpool(t)
			_, err := Open(context.Background(), path, WithSpoolDir(spool), WithMaxSpoolBytes(limit))
			assertSpoolCapError(t, err, path, sc.name, limit)
			if *written > limit {
				t.Errorf("%d bytes reached the spool, past the %d byte cap", *written, limit)
			}
			assertEmptyDir(t, spool)

			*written = 0
			_, err = Open(context.Background(), path, WithSpoolDir(spool), WithMaxSpoolBytes(0))
			if err == nil || strings.Contains(err.Error(), "spool cap") || !strings.Contains(err.Error(), "not an image archive") {
				t.Fatalf("with no cap: %v; want the seed refused as not an image archive, not by the cap", err)
			}
			if *written < zeros {
				t.Errorf("with no cap only %d bytes were spooled, want all %d", *written, zeros)
			}
			assertEmptyDir(t, spool)
		})
	}
}

// TestSpoolNoSpace: a spool dir that fills up is named in the error,
// with the seed, and nothing is left in it.
func TestSpoolNoSpace(t *testing.T) {
	f := newFixture(t)
	var tarball bytes.Buffer
	if err := f.seed.WriteOCITar(&tarball); err != nil {
		t.Fatal(err)
	}
	const room = 4096
	old := wrapSpool
	wrapSpool = func(spool *os.File) io.Writer {
		left := room
		return writerFunc(func(p []byte) (int, error) {
			if len(p) > left {
				n, _ := spool.Write(p[:left])
				left = 0
				return n, &os.PathError{Op: "write", Path: spool.Name(), Err: syscall.ENOSPC}
			}
			left -= len(p)
			return spool.Write(p)
		})
	}
	defer func() { wrapSpool = old }()
	for _, sc := range spoolCodecs {
		t.Run(sc.name, func(t *testing.T) {
			path := compressedSeed(t, tarball.Bytes(), sc.c)
			spool := t.TempDir()
			_, err := Open(context.Background(), path, WithSpoolDir(spool), WithMaxSpoolBytes(0))
			if err == nil {
				t.Fatal("opened with a full spool dir")
			}
			msg := err.Error()
			for _, want := range []string{
				"seed " + path + ": ",
				"spooling the decompressed " + sc.name + " archive into " + spool + ": ",
				fmt.Sprintf("spool dir full after %d bytes", room),
				"no space left on device",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !errors.Is(err, syscall.ENOSPC) || !errdefs.IsResourceExhausted(err) {
				t.Errorf("error %q is not ENOSPC and resource exhausted", msg)
			}
			assertEmptyDir(t, spool)
		})
	}
}

// TestSpoolDefaultCap: Open caps the spool unless told otherwise.
func TestSpoolDefaultCap(t *testing.T) {
	cfg := newOpenConfig(nil)
	if cfg.maxSpoolBytes != DefaultMaxSpoolBytes || DefaultMaxSpoolBytes <= 0 {
		t.Fatalf("default spool cap %d, want DefaultMaxSpoolBytes (%d)", cfg.maxSpoolBytes, DefaultMaxSpoolBytes)
	}
	WithMaxSpoolBytes(-1)(&cfg)
	if cfg.maxSpoolBytes != 0 {
		t.Fatalf("negative cap gave %d, want 0 (no cap)", cfg.maxSpoolBytes)
	}
}

// lz4 (frame format) and bzip2 seeds, as k3s takes them: detected by
// their magic, spooled once, capped like the others; xz is refused in one
// line saying so.
func TestSpoolLz4Bzip2(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var tarball bytes.Buffer
	if err := f.seed.WriteOCITar(&tarball); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lzPath := filepath.Join(dir, "seed.tar.lz4")
	var lz bytes.Buffer
	w := lz4.NewWriter(&lz)
	w.Write(tarball.Bytes())
	w.Close()
	os.WriteFile(lzPath, lz.Bytes(), 0o644)
	bzPath := filepath.Join(dir, "seed.tar.bz2")
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = bytes.NewReader(tarball.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2 (the Debian package; .ci/run installs it): %v", err)
	}
	os.WriteFile(bzPath, out, 0o644)
	for codec, p := range map[string]string{"lz4": lzPath, "bzip2": bzPath} {
		s, err := Open(ctx, p, WithSpoolDir(t.TempDir()))
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		if s.Format() != "oci-tar+"+codec {
			t.Errorf("%s: format %q", codec, s.Format())
		}
		if errs := s.Verify(ctx, layerlimit.Default()); len(errs) != 0 {
			t.Errorf("%s: verify: %v", codec, errs)
		}
		s.Close()
		_, err = Open(ctx, p, WithSpoolDir(t.TempDir()), WithMaxSpoolBytes(1024))
		assertSpoolCapError(t, err, p, codec, 1024)
	}
	xzCmd := exec.Command("xz", "-c")
	xzCmd.Stdin = bytes.NewReader(tarball.Bytes())
	if xb, err := xzCmd.Output(); err == nil {
		xp := filepath.Join(dir, "seed.tar.xz")
		os.WriteFile(xp, xb, 0o644)
		if _, err := Open(ctx, xp); !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "xz-compressed seeds are not read") {
			t.Errorf("xz: %v", err)
		}
	}
}
