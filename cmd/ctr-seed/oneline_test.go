package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

// oneLine says each thing once, in words: no error classes at the ends of
// the chain, no "seed X" twice, one line.
func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("seed /s.tar: image a:1 (sha256:aa): failed to copy: seed /s.tar: blob sha256:bb: digest mismatch: expected sha256:bb, got sha256:cc: %w", errdefs.ErrDataLoss),
			"seed /s.tar: image a:1 (sha256:aa): failed to copy: blob sha256:bb: digest mismatch: expected sha256:bb, got sha256:cc"},
		{fmt.Errorf("seed /s.tar: entry %q: path leaves the archive: %w: %w", "x", errdefs.ErrInvalidArgument, errdefs.ErrNotFound),
			`seed /s.tar: entry "x": path leaves the archive`},
		{fmt.Errorf("registry said:\n  denied\n: %w", errdefs.ErrUnavailable), "registry said: ; denied"},
		{errors.New("the file was not found somewhere"), "the file was not found somewhere"},
		{fmt.Errorf("pulling x:1: %w (offline: no registry fallback)", fmt.Errorf("x:1: not in any seed: %w", errdefs.ErrNotFound)),
			"pulling x:1: x:1: not in any seed (offline: no registry fallback)"},
	} {
		if got := oneLine(tc.err); got != tc.want {
			t.Errorf("oneLine(%q)\n = %q\nwant %q", tc.err, got, tc.want)
		}
	}
}
