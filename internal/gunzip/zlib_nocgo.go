//go:build !cgo || nozlib

package gunzip

import (
	"bufio"
	"errors"
	"io"
)

// Zlib says this build inflates with zlib: not this one (no cgo, or the
// nozlib tag).
const Zlib = false

func newZlib(*bufio.Reader) (io.ReadCloser, error) {
	return nil, errors.New("gzip: zlib: not in this build (no cgo, or the nozlib tag)")
}
