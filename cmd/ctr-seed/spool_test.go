package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
)

// gzipBomb writes a gzip-compressed tar of n zero bytes (no seed) and
// returns its path.
func gzipBomb(t *testing.T, n int64) string {
	t.Helper()
	zeros := testutil.RawTar(t, testutil.RawEntry{Name: "zeros", Body: make([]byte, n)})
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "bomb.tar.gz"), testutil.Archive(t, testseed.Gzip, testutil.Bytes(zeros)))
}

// TestMaxSpoolBytes: ls and verify pass --max-spool-bytes (or
// $CTR_SEED_MAX_SPOOL_BYTES) on to the seeds they open.
func TestMaxSpoolBytes(t *testing.T) {
	bomb := gzipBomb(t, 1<<20)
	t.Setenv("TMPDIR", t.TempDir())
	runApp := func(args ...string) (string, error) {
		app := newApp()
		var out, errw bytes.Buffer
		app.Writer, app.ErrWriter = &out, &errw
		err := app.Run(context.Background(), append([]string{"ctr-seed"}, args...))
		return errw.String(), err
	}
	const refused = "exceeds the spool cap (--max-spool-bytes, max_spool_bytes): expected at most 4096 bytes, got more"
	for _, cmd := range []string{"ls", "verify"} {
		stderr, err := runApp(cmd, "--max-spool-bytes", "4096", bomb)
		if err == nil || !strings.Contains(stderr, "seed "+bomb+": ") || !strings.Contains(stderr, refused) {
			t.Errorf("%s --max-spool-bytes 4096: err %v, stderr %q; want %q", cmd, err, stderr, refused)
		}
		// No cap: the whole tar is spooled, and it is no seed.
		stderr, err = runApp(cmd, "--max-spool-bytes", "0", bomb)
		if err == nil || strings.Contains(stderr, "spool cap") || !strings.Contains(stderr, "not an image archive") {
			t.Errorf("%s --max-spool-bytes 0: err %v, stderr %q; want not an image archive", cmd, err, stderr)
		}
		_, err = runApp(cmd, "--max-spool-bytes", "-1", bomb)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--max-spool-bytes -1") {
			t.Errorf("%s --max-spool-bytes -1: %v; want a usage error", cmd, err)
		}
	}
	t.Setenv("CTR_SEED_MAX_SPOOL_BYTES", "4096")
	if stderr, err := runApp("ls", bomb); err == nil || !strings.Contains(stderr, refused) {
		t.Errorf("ls with CTR_SEED_MAX_SPOOL_BYTES=4096: err %v, stderr %q; want %q", err, stderr, refused)
	}
	// The default cap is far above 1 MiB.
	t.Setenv("CTR_SEED_MAX_SPOOL_BYTES", "")
	os.Unsetenv("CTR_SEED_MAX_SPOOL_BYTES")
	if stderr, _ := runApp("ls", bomb); strings.Contains(stderr, "spool cap") || !strings.Contains(stderr, "not an image archive") {
		t.Errorf("ls with the default cap: stderr %q; want not an image archive", stderr)
	}
}
