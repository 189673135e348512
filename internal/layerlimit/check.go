package layerlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow caps the zstd decoder's window memory when a layer is
// counted (k3s uses the same): a stream that needs a larger window cannot
// be counted, so it is refused rather than passed.
const zstdMaxWindow = 32 << 20

// Reader caps r, a layer's decompressed content: the read that passes
// c.Max fails with c.Exceeded.
func (c Cap) Reader(r io.Reader) io.Reader { return &capReader{r: r, c: c} }

type capReader struct {
	r io.Reader
	n int64
	c Cap
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.c.Max {
		return n, c.c.Exceeded(c.n)
	}
	return n, err
}

// Check reads r, the layer's compressed content as the daemon's applier
// will read it, and fails if it expands beyond the cap. The format is
// detected as containerd detects it; a stream that cannot be decompressed
// is an error too, never a pass (the daemon's decoder may be more
// lenient, or allow a larger window, than the count was).
func (c Cap) Check(r io.Reader) error {
	return c.count(r)
}

// undecodable marks a count that stopped on a decoder error rather than
// on the cap, so a caller can let a digest mismatch speak first.
type undecodable struct{ error }

func (u undecodable) Unwrap() error { return u.error }

func (c Cap) count(r io.Reader) error {
	if !c.Sniffed {
		// The applier takes the content as it is: its size is what it is.
		if c.Compressed > c.Max {
			return c.Exceeded(c.Compressed)
		}
		return nil
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var dec io.ReadCloser
	switch kind := compression.DetectCompression(head); kind {
	case compression.Uncompressed:
		if c.Compressed > c.Max {
			return c.Exceeded(c.Compressed)
		}
		return nil
	case compression.Gzip:
		g, err := gzip.NewReader(br)
		if err != nil {
			return c.undecodable("gzip", err)
		}
		dec = g
	case compression.Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return c.undecodable("zstd", err)
		}
		dec = z.IOReadCloser()
	default:
		return c.undecodable("layer", fmt.Errorf("unsupported compression %v", kind))
	}
	defer dec.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(dec, c.Max+1))
	if n > c.Max {
		return c.Exceeded(n)
	}
	if err != nil {
		return c.undecodable(compressionName(head), err)
	}
	return nil
}

func compressionName(head []byte) string {
	if compression.DetectCompression(head) == compression.Gzip {
		return "gzip"
	}
	return "zstd"
}

func (c Cap) undecodable(format string, err error) error {
	return undecodable{fmt.Errorf("layer %s: %s content cannot be decompressed to check how far it expands: %v: %w",
		c.Layer, format, err, errdefs.ErrInvalidArgument)}
}
