// Package gunzip is the gzip decompressor of layers and of seeds
// compressed as a whole: the system's zlib through cgo when the build has
// it (Zlib), klauspost's gzip otherwise (no cgo, or the nozlib tag).
//
// Inflating is the longest single task of a fresh import: one gzip
// stream cannot be inflated in parallel. See zlib_cgo.go for what zlib
// saves.
package gunzip

import (
	"bufio"
	"io"

	kgzip "github.com/klauspost/compress/gzip"
)

// NewReader decompresses the gzip stream br (one or more members).
func NewReader(br *bufio.Reader) (io.ReadCloser, error) {
	if Zlib {
		return newZlib(br)
	}
	return kgzip.NewReader(br)
}
