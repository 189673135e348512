package layerlimit

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ZstdMaxWindow is the largest zstd window a layer is decoded with when it
// is counted or verified: containerd's own decoder's (klauspost's default),
// so what containerd applies is counted, and what it cannot decode is
// refused here too. The decoder's memory grows with what it decodes, so a
// hostile window costs at most the layer's cap.
const ZstdMaxWindow = zstd.MaxWindowSize

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
		// The applier takes the content as a tar, as it is.
		return c.named("tar", c.Count(r))
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var dec io.ReadCloser
	format := "gzip"
	switch kind := compression.DetectCompression(head); kind {
	case compression.Uncompressed:
		return c.named("tar", c.Count(br))
	case compression.Gzip:
		g, err := gzip.NewReader(br)
		if err != nil {
			return c.undecodable(format, err)
		}
		dec = g
	case compression.Zstd:
		format = "zstd"
		z, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(ZstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return c.undecodable(format, err)
		}
		dec = z.IOReadCloser()
	default:
		return c.undecodable("layer", fmt.Errorf("unsupported compression %v", kind))
	}
	defer dec.Close()
	return c.named(format, c.Count(dec))
}

// named says which layer and format an undecodable error is about.
func (c Cap) named(format string, err error) error {
	var u undecodable
	if errors.As(err, &u) {
		return c.undecodable(format, u.error)
	}
	return err
}

// Count reads r, a layer's uncompressed tar, to its end: it fails when
// more than c.Max bytes come out, or when the files it declares are
// larger than that in all (a sparse entry declares far more than it holds,
// and the tar reader expands it). A stream that is not a tar is an
// undecodable error. Whatever reads r through a TeeReader sees every byte.
func (c Cap) Count(r io.Reader) error {
	cr := &countingReader{r: io.LimitReader(r, c.Max+1)}
	tr := tar.NewReader(cr)
	var files int64
	for {
		hdr, err := tr.Next()
		if cr.n > c.Max {
			return c.Exceeded(cr.n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return undecodable{fmt.Errorf("not a valid tar: %w", err)}
		}
		if files += max(hdr.Size, 0); files > c.Max {
			return c.Exceeded(files)
		}
	}
	// Whatever follows the end of the archive still comes out.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return undecodable{err}
	}
	if cr.n > c.Max {
		return c.Exceeded(cr.n)
	}
	return nil
}

// Written checks the sizes of a layer's entries so far (total) against
// the cap, for an applier reading the tar itself.
func (c Cap) Written(total int64) error {
	if total > c.Max {
		return c.Exceeded(total)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c Cap) undecodable(format string, err error) error {
	var u undecodable
	if errors.As(err, &u) {
		err = u.error
	}
	return undecodable{fmt.Errorf("layer %s: %s content cannot be decompressed to check how far it expands: %v: %w",
		c.Layer, format, err, errdefs.ErrInvalidArgument)}
}
