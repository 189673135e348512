package fetcher

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow caps the zstd decoder's window memory (k3s uses the same).
const zstdMaxWindow = 32 << 20

type codec string

const (
	plain     codec = ""
	gzipped   codec = "gzip"
	zstandard codec = "zstd"
)

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// detect reads the compression from magic bytes, never from the name.
func detect(head []byte) (codec, error) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return gzipped, nil
	case bytes.HasPrefix(head, magicZstd):
		return zstandard, nil
	case bytes.HasPrefix(head, magicXz), bytes.HasPrefix(head, magicBzip2):
		return "", fmt.Errorf("unsupported compression (xz or bzip2; recompress with gzip or zstd): %w", errdefs.ErrNotImplemented)
	}
	return plain, nil
}

// decompressor returns a streaming decompressor for c.
func decompressor(r io.Reader, c codec) (io.ReadCloser, error) {
	switch c {
	case gzipped:
		return gzip.NewReader(r)
	case zstandard:
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// spoolTar decompresses a whole-archive-compressed tar once: the same
// stream is indexed and copied into an unlinked temporary file, whose
// sections then serve the blobs. The spool vanishes when closed, or when
// the process dies.
func spoolTar(f io.Reader, c codec, spoolDir string) (*tarArchive, error) {
	dec, err := decompressor(bufio.NewReaderSize(f, 1<<20), c)
	if err != nil {
		return nil, fmt.Errorf("%s stream: %v: %w", c, err, errdefs.ErrInvalidArgument)
	}
	defer dec.Close()
	spool, err := os.CreateTemp(spoolDir, ".ctr-seed-spool-*")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	if err := os.Remove(spool.Name()); err != nil {
		spool.Close()
		return nil, fmt.Errorf("unlinking spool file: %w", err)
	}
	bw := bufio.NewWriterSize(spool, 1<<20)
	pr := &posReader{r: io.TeeReader(bufio.NewReaderSize(dec, 1<<20), bw)}
	idx, err := indexTar(pr)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		spool.Close()
		return nil, fmt.Errorf("%s-compressed seed: %w", c, err)
	}
	return &tarArchive{ra: spool, closer: spool, idx: idx}, nil
}
