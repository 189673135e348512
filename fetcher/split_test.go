package fetcher

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
)

// splitInto writes b as base.001, base.002, … of size bytes each.
func splitInto(t *testing.T, b []byte, base string, size int) []string {
	t.Helper()
	var parts []string
	for i := 0; len(b) > 0; i++ {
		n := min(size, len(b))
		p := fmt.Sprintf("%s.%03d", base, i+1)
		if err := os.WriteFile(p, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
		b = b[n:]
	}
	return parts
}

// A split seed reads as the whole, named by its first part or its base
// name, and verifies; a missing or short middle part is one error naming it.
func TestSplitSeed(t *testing.T) {
	f := newFixture(t)
	whole, err := os.ReadFile(f.write(t, "oci-tar"))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "seed.tar")
	parts := splitInto(t, whole, base, 1500)
	if len(parts) < 4 {
		t.Fatalf("fixture: %d parts", len(parts))
	}
	for _, name := range []string{parts[0], base} {
		s, err := Open(context.Background(), name)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if errs := s.Verify(context.Background(), layerlimit.Default()); len(errs) != 0 {
			t.Errorf("verify %s: %v", name, errs)
		}
		imgs, _ := s.Images(context.Background())
		if len(imgs) == 0 || !strings.Contains(s.Format(), fmt.Sprintf("split, %d parts", len(parts))) {
			t.Errorf("%s: %d images, format %q", name, len(imgs), s.Format())
		}
		s.Close()
	}
	if !SeedName("seed.tar.001") || SeedName("seed.tar.002") || SeedName("seed.tar.017") {
		t.Error("SeedName: a later part counts as a seed of its own")
	}

	short := parts[1] + ".bak"
	os.Rename(parts[1], short)
	if _, err := Open(context.Background(), parts[0]); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "part "+parts[1]+" is missing") {
		t.Errorf("missing middle part: %v", err)
	}
	b, _ := os.ReadFile(short)
	os.WriteFile(parts[1], b[:100], 0o644)
	if _, err := Open(context.Background(), parts[0]); !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), "part "+parts[1]) {
		t.Errorf("short middle part: %v", err)
	}
}

// A seed on a stream is read once, plain or compressed, and capped.
func TestOpenStream(t *testing.T) {
	f := newFixture(t)
	for _, format := range []string{"oci-tar", "oci-tar.zst"} {
		b, err := os.ReadFile(f.write(t, format))
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenStream(context.Background(), "<stdin>", bytes.NewReader(b), WithSpoolDir(t.TempDir()))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if errs := s.Verify(context.Background(), layerlimit.Default()); len(errs) != 0 {
			t.Errorf("%s: verify: %v", format, errs)
		}
		s.Close()
		_, err = OpenStream(context.Background(), "<stdin>", bytes.NewReader(b), WithSpoolDir(t.TempDir()), WithMaxSpoolBytes(512))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "seed <stdin>: ") || !strings.Contains(err.Error(), "exceeds the spool cap") {
			t.Errorf("%s under a 512 byte cap: %v", format, err)
		}
	}
}
