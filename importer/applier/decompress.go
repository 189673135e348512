package applier

import (
	"bufio"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// decompressStream is containerd's compression.DecompressStream (the same
// detection, the same klauspost decoders and options), but always in
// process and a few chunks ahead of its reader (readAhead). containerd
// runs unpigz (or igzip) instead when it is on PATH. Measured here, twice:
//   - through containerd's wiring (an io.Pipe, exec's copying goroutines),
//     the small bench seed's fresh import took 3.50 s, 2.62 s in process;
//   - through plain OS pipes of 1 MiB, with the layer's write into the
//     store read along (issue 17), the big-file seed's fresh import took
//     4.34 s and 4.34 s (in the daemon 3.86 / 3.45 s), in process with
//     read-ahead 4.46 / 3.90 s (3.52 / 3.02 s), same runs and machine.
//
// Alone, unpigz inflates a 254 MB layer in 1.0 s to klauspost's 2.2 s;
// in an import on two cores its extra threads and copies cost that back.
func decompressStream(br *bufio.Reader) (io.ReadCloser, error) {
	head, err := br.Peek(10)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch c := compression.DetectCompression(head); c {
	case compression.Uncompressed:
		return io.NopCloser(br), nil
	case compression.Gzip:
		z, err := kgzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return newReadAhead(z), nil
	case compression.Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, err
		}
		return newReadAhead(z.IOReadCloser()), nil
	default:
		return nil, fmt.Errorf("unsupported compression format %s: %w", c.Extension(), errdefs.ErrNotImplemented)
	}
}
