package importer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

func TestDistinct(t *testing.T) {
	cause := errors.New("seed s: blob b: digest mismatch")
	for name, tc := range map[string]struct {
		in   error
		want string
	}{
		"nil":           {nil, ""},
		"plain":         {cause, cause.Error()},
		"repeated":      {errors.Join(cause, cause, errors.Join(cause, errors.New("aborted"))), cause.Error()},
		"two causes":    {errors.Join(cause, errors.New("other"), cause), cause.Error() + "\nother"},
		"only aborted":  {errors.Join(errors.New("aborted")), "aborted"},
		"wrapped, kept": {fmt.Errorf("x: %w", cause), "x: " + cause.Error()},
	} {
		t.Run(name, func(t *testing.T) {
			got := distinct(tc.in)
			if (got == nil) != (tc.want == "") || (got != nil && got.Error() != tc.want) {
				t.Fatalf("distinct = %v, want %q", got, tc.want)
			}
			if tc.in != nil && !errors.Is(got, cause) && tc.want != "aborted" {
				t.Errorf("distinct(%v) lost the cause from errors.Is", tc.in)
			}
		})
	}
	if err := distinct(errors.Join(context.Canceled, context.Canceled)); !errors.Is(err, context.Canceled) {
		t.Errorf("class lost: %v", err)
	}
}

// The unpacker's cleanup of an extraction snapshot that is already gone
// (a failed import's collection got there first) is no error; any other
// failure of Remove still is. On the real metadata snapshotter.
func TestGoneIsRemoved(t *testing.T) {
	s := newStores(t)
	ctx := nsCtx("default")
	raw := s.svc.Snapshotter(s.sn)
	if err := raw.Remove(ctx, "extract-gone"); !errdefs.IsNotFound(err) {
		t.Fatalf("raw Remove of a missing snapshot: %v, want not found (the case this wrapper is for)", err)
	}
	sn := goneIsRemoved{raw}
	if err := sn.Remove(ctx, "extract-gone"); err != nil {
		t.Errorf("Remove of a missing snapshot through goneIsRemoved: %v, want nil", err)
	}
	// A committed parent with a child cannot be removed: still an error.
	if _, err := raw.Prepare(ctx, "p-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := raw.Commit(ctx, "p", "p-active"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Prepare(ctx, "child", "p"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "p"); err == nil {
		t.Errorf("Remove of a parent with a child through goneIsRemoved: nil, want an error")
	}
}
