package errclass

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/containerd/errdefs"
)

func TestErrorf(t *testing.T) {
	err := fmt.Errorf("seed s.tar: %w", Errorf(errdefs.ErrDataLoss, "blob %s: digest mismatch: %w", "sha256:00", fs.ErrClosed))
	if got, want := err.Error(), "seed s.tar: blob sha256:00: digest mismatch: "+fs.ErrClosed.Error(); got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if !errdefs.IsDataLoss(err) || !errors.Is(err, fs.ErrClosed) || errdefs.IsNotFound(err) {
		t.Errorf("%v: class or cause lost", err)
	}
}
