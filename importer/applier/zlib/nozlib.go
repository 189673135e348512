//go:build !cgo || nozlib

package zlib

import (
	"bufio"
	"errors"
)

// Enabled says this build inflates with zlib: not this one (no cgo, or
// the nozlib tag).
const Enabled = false

// Reader is not available in this build.
type Reader struct{}

// NewReader fails in this build: callers check Enabled first.
func NewReader(*bufio.Reader) (*Reader, error) {
	return nil, errors.New("gzip: zlib: not in this build (no cgo, or the nozlib tag)")
}

func (*Reader) Read([]byte) (int, error) { return 0, errors.New("gzip: zlib: not in this build") }

func (*Reader) Close() error { return nil }
