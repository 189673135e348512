// Package errclass gives an error one of containerd's errdefs classes
// without the class's words in its text: errors.Is(err,
// errdefs.ErrDataLoss) holds, and the line an operator reads (on a
// terminal, in the plugin's log) ends with what is wrong, not ": data
// loss". No caller then repairs the text afterwards.
package errclass

import "fmt"

// Errorf is fmt.Errorf(format, args...) of the class (an errdefs
// sentinel: errdefs.ErrDataLoss, ErrNotFound, ...).
func Errorf(class error, format string, args ...any) error {
	return &classed{err: fmt.Errorf(format, args...), class: class}
}

type classed struct{ err, class error }

func (c *classed) Error() string { return c.err.Error() }

// Unwrap is the error's own chain; Is matches the class. (Not both in an
// Unwrap() []error: errgrpc would send the class as a detail, and the
// far side would print its words after a newline.)
func (c *classed) Unwrap() error { return c.err }

func (c *classed) Is(target error) bool { return target == c.class }
