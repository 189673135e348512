package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"text/tabwriter"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manySeed writes a seed of n one-layer images and returns its path.
func manySeed(t *testing.T, n int) string {
	t.Helper()
	s, err := testseed.Many(n, "registry.local/ls/img", ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "many.tar"), testutil.Archive(t, testseed.Uncompressed, s.WriteOCITar))
}

// TestLsLinearInImages: ls of 4n images does about 4 times the work of
// ls of n (counted as allocations, not time: no machine is too slow for
// it), not 16 times, as when each image's signatures and referrers were
// looked up by scanning every entry of the seed.
func TestLsLinearInImages(t *testing.T) {
	const n = 250
	allocs := func(path string) float64 {
		return testing.AllocsPerRun(1, func() {
			var out bytes.Buffer
			if err := lsSeed(context.Background(), tabwriter.NewWriter(&out, 1, 8, 1, ' ', 0), path, false, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, big := allocs(manySeed(t, n)), allocs(manySeed(t, 4*n))
	if ratio := big / small; ratio > 6 {
		t.Errorf("ls of %d images allocates %.0f times, of %d images %.0f times (%.1f×, want about 4×: linear)", n, small, 4*n, big, ratio)
	}
}

// TestLsStops: ls stops listing when its context ends (SIGTERM, SIGINT),
// saying why, instead of listing the rest of a seed of thousands of
// images.
func TestLsStops(t *testing.T) {
	path := manySeed(t, 20)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped by SIGTERM")
	cancel(stop)
	var out bytes.Buffer
	tw := tabwriter.NewWriter(&out, 1, 8, 1, ' ', 0)
	err := lsSeed(ctx, tw, path, false, nil)
	tw.Flush()
	if !errors.Is(err, stop) {
		t.Errorf("ls with its context ended: error %v, want %v", err, stop)
	}
	if out.Len() != 0 {
		t.Errorf("ls with its context ended listed:\n%s", out.String())
	}
}
