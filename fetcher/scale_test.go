package fetcher

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
)

// manySeed writes a seed of n one-layer images and returns its path.
func manySeed(t testing.TB, n int) string {
	t.Helper()
	s, err := testseed.Many(n, "registry.local/scale/img", amd64)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "many.tar"), testutil.Archive(t, testseed.Uncompressed, s.WriteOCITar))
}

// lookupAllocs is the allocations of asking every image of an n-image
// seed for its attachments, signatures and referrers, as ls and import do.
func lookupAllocs(t *testing.T, n int) float64 {
	ctx := context.Background()
	s := openSeed(t, manySeed(t, n))
	imgs, err := s.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(1, func() {
		for _, img := range imgs {
			if _, err := s.Attachments(ctx, img.Target.Digest); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Signatures(ctx, img.Target.Digest); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Referrers(ctx, img.Target.Digest); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestLookupsLinearInImages: the per-image lookups of a seed's entries
// (signatures, attachments, referrers) cost the same whatever the number
// of images, so ls and import are linear in it: work counted as
// allocations, which do not depend on the machine's speed, for n and 4n
// images; quadratic lookups make that 16 times as many.
func TestLookupsLinearInImages(t *testing.T) {
	const n = 250
	small, big := lookupAllocs(t, n), lookupAllocs(t, 4*n)
	if ratio := big / small; ratio > 6 {
		t.Errorf("lookups for %d images allocate %.0f times, for %d images %.0f times (%.1f×, want about 4×: linear)", n, small, 4*n, big, ratio)
	}
}
