package fetcher

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/gunzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// zstdMaxWindow caps the zstd decoder's window memory (k3s uses the same).
const zstdMaxWindow = 32 << 20

type codec string

const (
	plain     codec = ""
	gzipped   codec = "gzip"
	zstandard codec = "zstd"
	lz4frame  codec = "lz4"
	bzipped   codec = "bzip2"
)

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicLz4  = []byte{0x04, 0x22, 0x4d, 0x18} // the lz4 frame format
)

// isBzip2 is "BZh", a block size digit, then the first block's magic (a
// tar whose first name starts with "BZh" is not taken for one).
func isBzip2(head []byte) bool {
	return len(head) >= 10 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9' &&
		bytes.Equal(head[4:10], []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59})
}

// spooled names what a spool of c holds, for messages.
func (c codec) spooled() string {
	if c == plain {
		return "streamed"
	}
	return "decompressed " + string(c)
}

// detect reads the compression from magic bytes, never from the name.
func detect(head []byte) (codec, error) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return gzipped, nil
	case bytes.HasPrefix(head, magicZstd):
		return zstandard, nil
	case bytes.HasPrefix(head, magicLz4):
		return lz4frame, nil
	case isBzip2(head):
		return bzipped, nil
	case bytes.HasPrefix(head, magicXz):
		return "", fmt.Errorf("xz-compressed seeds are not read (nor by k3s): recompress with zstd, gzip, lz4 or bzip2: %w", errdefs.ErrNotImplemented)
	}
	return plain, nil
}

// decompressor returns a streaming decompressor for c.
func decompressor(r *bufio.Reader, c codec) (io.ReadCloser, error) {
	switch c {
	case gzipped:
		return gunzip.NewReader(r)
	case zstandard:
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case lz4frame:
		return io.NopCloser(lz4.NewReader(r)), nil
	case bzipped:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return io.NopCloser(r), nil
}

// DefaultMaxSpoolBytes is how much a whole-archive-compressed seed may
// decompress to by default: 64 GiB. The spool holds the whole uncompressed
// tar on disk while the seed is open, so without a cap a few MB of gzip
// could fill the spool dir's filesystem (often /var or /tmp, shared with
// containerd's content store and snapshots). 64 GiB is well above the
// largest real image archives (CUDA and ML images reach 10-30 GiB
// uncompressed), so no genuine seed is refused, yet a bomb stops there. A
// fixed number, not a share of the free space: the same seed then passes
// or fails the same way on every node, whatever else is on the disk; a
// disk too small for a legitimate spool fails with ENOSPC, named as such,
// and the spool's space comes back at once (the file is unlinked).
const DefaultMaxSpoolBytes int64 = 64 << 30

// WithMaxSpoolBytes caps how many bytes a whole-archive-compressed (gzip or
// zstd) seed may decompress to in its spool: Open refuses a seed whose
// decompressed tar goes past n bytes, with errdefs.ErrInvalidArgument.
// 0 sets no cap. Default: DefaultMaxSpoolBytes.
func WithMaxSpoolBytes(n int64) Opt {
	return func(c *openConfig) { c.maxSpoolBytes = max(n, 0) }
}

// wrapSpool is what the spool file is written through; tests wrap it to
// fail writes (ENOSPC) or count what reached the disk.
var wrapSpool = func(f *os.File) io.Writer { return f }

// spoolTar decompresses a whole-archive-compressed tar once: the same
// stream is indexed and copied into an unlinked temporary file, whose
// sections then serve the blobs. The spool vanishes when closed, or when
// the process dies. Past maxBytes (0: no cap) of decompressed tar, or when
// the spool cannot be written, nothing is kept and the error says why.
func spoolTar(f io.Reader, c codec, spoolDir string, maxBytes int64) (*tarArchive, error) {
	dir := spoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	dec, err := decompressor(bufio.NewReaderSize(f, 1<<20), c)
	if err != nil {
		return nil, fmt.Errorf("%s stream: %v: %w", c, err, errdefs.ErrInvalidArgument)
	}
	defer dec.Close()
	spool, err := unlinkedFile(dir, ".ctr-seed-spool-*")
	if err != nil {
		return nil, err
	}
	fw := &spoolFileWriter{w: wrapSpool(spool)}
	cw := &spoolCapWriter{w: bufio.NewWriterSize(fw, 1<<20), max: maxBytes}
	pr := &posReader{r: io.TeeReader(bufio.NewReaderSize(dec, 1<<20), cw)}
	idx, err := indexTar(pr)
	if err == nil {
		err = cw.w.Flush()
	}
	if err != nil {
		spool.Close()
		// A failed spool write or the cap reaches indexTar as a read error
		// it may reword; say what really happened.
		switch {
		case cw.exceeded:
			return nil, fmt.Errorf("%s archive exceeds the spool cap (--max-spool-bytes, max_spool_bytes): expected at most %d bytes, got more: %w",
				c.spooled(), maxBytes, errdefs.ErrInvalidArgument)
		case fw.err != nil && errors.Is(fw.err, syscall.ENOSPC):
			return nil, fmt.Errorf("spooling the %s archive into %s: spool dir full after %d bytes (it needs the uncompressed archive's size free): %w: %w",
				c.spooled(), dir, fw.n, syscall.ENOSPC, errdefs.ErrResourceExhausted)
		case fw.err != nil:
			return nil, fmt.Errorf("spooling the %s archive into %s after %d bytes: %w", c.spooled(), dir, fw.n, fw.err)
		}
		if c == plain {
			return nil, fmt.Errorf("streamed seed: %w", err)
		}
		return nil, fmt.Errorf("%s-compressed seed: %w", c, err)
	}
	return &tarArchive{ra: spool, closer: spool, idx: idx}, nil
}

// errSpoolCap stops the tee into the spool once the cap is passed.
var errSpoolCap = errors.New("spool cap exceeded")

// spoolCapWriter passes at most max bytes (0: any) on to w; the write that
// would go past max writes nothing and fails.
type spoolCapWriter struct {
	w        *bufio.Writer
	n, max   int64
	exceeded bool
}

func (s *spoolCapWriter) Write(p []byte) (int, error) {
	if s.max > 0 && int64(len(p)) > s.max-s.n {
		s.exceeded = true
		return 0, errSpoolCap
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// spoolFileWriter remembers the first error writing the spool file, and
// how much was written before it.
type spoolFileWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (s *spoolFileWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	s.err = err
	return n, err
}
