package importer

import (
	"context"
	"errors"
	"fmt"
	"testing"
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
