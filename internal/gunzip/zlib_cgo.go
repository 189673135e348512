//go:build cgo && !nozlib

// zlib, measured on this project's bench machine: the 254 MB gzip layer
// of the big-file seed (503 MB of files) inflates with 1.2 s of CPU
// against 2.2 s with klauspost's flate, and the fresh import of that seed
// took 3.64-4.03 s against 4.32-4.73 s, same runs.
package gunzip

/*
#cgo LDFLAGS: -lz
#include <stdlib.h>
#include <zlib.h>

static z_stream *zs_new(void) {
	z_stream *s = calloc(1, sizeof(z_stream));
	if (s == NULL) return NULL;
	// 16 + MAX_WBITS: a gzip wrapper, its CRC-32 and size checked at the end.
	if (inflateInit2(s, 16 + MAX_WBITS) != Z_OK) { free(s); return NULL; }
	return s;
}

static void zs_free(z_stream *s) { inflateEnd(s); free(s); }

static int zs_reset(z_stream *s) { return inflateReset(s); }

// zs_inflate inflates from in into out. The Go buffers are used for the
// call only: the stream keeps no pointer to them once it returns.
static int zs_inflate(z_stream *s, unsigned char *in, unsigned in_len,
		unsigned char *out, unsigned out_len, unsigned *consumed, unsigned *produced) {
	s->next_in = in; s->avail_in = in_len;
	s->next_out = out; s->avail_out = out_len;
	int rc = inflate(s, Z_NO_FLUSH);
	*consumed = in_len - s->avail_in;
	*produced = out_len - s->avail_out;
	s->next_in = Z_NULL; s->next_out = Z_NULL;
	s->avail_in = 0; s->avail_out = 0;
	return rc;
}

static const char *zs_msg(z_stream *s) { return s->msg; }
*/
import "C"

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"
)

// Zlib says this build inflates with zlib.
const Zlib = true

// zlibReader decompresses a gzip stream of one or more members, as
// compress/gzip's Reader does by default.
type zlibReader struct {
	s     *C.z_stream
	src   *bufio.Reader
	err   error
	ended bool // the current member ended: another may follow
}

// newZlib returns a zlibReader of src; Close frees its zlib state.
func newZlib(src *bufio.Reader) (io.ReadCloser, error) {
	s := C.zs_new()
	if s == nil {
		return nil, errors.New("gzip: zlib: cannot initialise an inflate stream")
	}
	return &zlibReader{s: s, src: src}, nil
}

func (r *zlibReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.s == nil {
		return 0, errors.New("gzip: read after close")
	}
	if len(p) > math.MaxInt32 {
		p = p[:math.MaxInt32]
	}
	for len(p) > 0 {
		if r.ended {
			if _, err := r.src.Peek(1); err != nil {
				return 0, r.fail(err, io.EOF)
			}
			if C.zs_reset(r.s) != C.Z_OK {
				return 0, r.fail(errors.New("gzip: zlib: cannot reset the inflate stream"), nil)
			}
			r.ended = false
		}
		if _, err := r.src.Peek(1); err != nil { // fills an empty buffer
			return 0, r.fail(err, io.ErrUnexpectedEOF)
		}
		in, _ := r.src.Peek(r.src.Buffered())
		var consumed, produced C.uint
		rc := C.zs_inflate(r.s, (*C.uchar)(unsafe.Pointer(&in[0])), C.uint(len(in)),
			(*C.uchar)(unsafe.Pointer(&p[0])), C.uint(len(p)), &consumed, &produced)
		if _, err := r.src.Discard(int(consumed)); err != nil {
			return 0, r.fail(err, nil)
		}
		switch rc {
		case C.Z_STREAM_END:
			r.ended = true
		case C.Z_OK, C.Z_BUF_ERROR: // progress, or all the input taken
		default:
			msg := "invalid data"
			if m := C.zs_msg(r.s); m != nil {
				msg = C.GoString(m)
			}
			return int(produced), r.fail(fmt.Errorf("gzip: %s", msg), nil)
		}
		if produced > 0 {
			return int(produced), nil
		}
	}
	return 0, nil
}

// fail ends the stream with err. When the source ended, that is the
// clean end for atEOF io.EOF (between members), else atEOF, for the
// gzip reader's own words; the source's other errors pass unchanged.
func (r *zlibReader) fail(err, atEOF error) error {
	switch {
	case errors.Is(err, io.EOF) && atEOF == io.EOF:
		r.err = io.EOF
	case errors.Is(err, io.EOF):
		r.err = fmt.Errorf("gzip: %w", atEOF)
	default:
		r.err = err
	}
	return r.err
}

// Close frees the zlib state; the source is the caller's.
func (r *zlibReader) Close() error {
	if r.s != nil {
		C.zs_free(r.s)
		r.s = nil
	}
	return nil
}
