package importer

import (
	"errors"
	"testing"
)

// The same results say the same thing whichever path tallies them;
// a skipped entry is in neither count.
func TestSummarize(t *testing.T) {
	results := []ImageResult{
		{Seed: "a.tar", Names: []string{"a:1"}},
		{Seed: "a.tar", Skipped: "an entry for linux/arm64, not linux/amd64"},
		{Seed: "b.tar", Err: errors.New("seed b.tar: blob sha256:00: digest mismatch")},
		{Seed: "README", Skipped: "not an image archive"},
		{Seed: "c.tar", Names: []string{"c:1"}},
	}
	s := Summarize(results)
	if want := (Summary{Total: 3, Failed: 1, Skipped: 2}); s != want {
		t.Fatalf("Summarize: %+v, want %+v", s, want)
	}
	if got, want := s.String(), "1 of 3 images failed"; got != want {
		t.Errorf("summary line %q, want %q", got, want)
	}
	err := s.Err()
	var fe *FailedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrImagesFailed) || err.Error() != s.String() {
		t.Errorf("Err() = %v, want a *FailedError matching ErrImagesFailed and saying %q", err, s.String())
	}
	if err := Summarize(results[:2]).Err(); err != nil {
		t.Errorf("no failure: Err() = %v, want nil", err)
	}
}
