package importer

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// tap carries a copy of a layer's stream from its write to the applier,
// a few chunks ahead, so neither waits on the other for each chunk.
type tap struct {
	ch   chan []byte
	quit chan struct{} // closed by the reader
	err  error         // the write's end: set before ch is closed
	fed  bool          // the fetcher read the layer (else the store had it)
}

const (
	tapChunks    = 8
	tapChunkSize = 256 << 10
)

var tapPool = sync.Pool{New: func() any { b := make([]byte, tapChunkSize); return &b }}

// errNotFed: the write ended without reading the layer (another writer
// committed it first): the applier reads the store's copy.
var errNotFed = errors.New("layer written by another writer")

func newTap() *tap {
	return &tap{ch: make(chan []byte, tapChunks), quit: make(chan struct{})}
}

// write hands a copy of p to the reader; once the reader is gone (its
// apply failed), the rest is dropped: the write goes on to the end of the
// layer, so a corrupt seed is reported by its digest, not by what the
// applier made of the corrupt bytes.
func (t *tap) write(p []byte) {
	for len(p) > 0 {
		select {
		case <-t.quit:
			return
		default:
		}
		bp := tapPool.Get().(*[]byte)
		n := copy(*bp, p)
		select {
		case t.ch <- (*bp)[:n]:
		case <-t.quit:
			tapPool.Put(bp)
			return
		}
		p = p[n:]
	}
}

// close ends the stream; called by the writing goroutine once it is done.
func (t *tap) close(err error) {
	switch {
	case err != nil:
		t.err = err
	case !t.fed:
		t.err = errNotFed
	default:
		t.err = io.EOF
	}
	close(t.ch)
}

// tapReader is the applier's end of a tap. Its EOF comes only after the
// blob is committed; Close waits for the write and returns its error.
type tapReader struct {
	t        *tap
	w        *teeWrite
	fallback func() (io.ReadCloser, error)
	cur      []byte
	chunk    []byte // cur's buffer, back to the pool once read
	read     int64
	eof      bool
	store    io.ReadCloser // the store's copy, after errNotFed
	closed   bool
}

func (r *tapReader) Read(p []byte) (int, error) {
	if r.store != nil {
		return r.store.Read(p)
	}
	for len(r.cur) == 0 {
		if r.chunk != nil {
			full := r.chunk[:cap(r.chunk)]
			tapPool.Put(&full)
			r.chunk = nil
		}
		b, ok := <-r.t.ch
		if !ok {
			err := r.t.err
			if err == errNotFed && r.read == 0 {
				if r.store, err = r.fallback(); err != nil {
					return 0, err
				}
				return r.store.Read(p)
			}
			if err == io.EOF {
				r.eof = true
			} else if err == errNotFed {
				err = fmt.Errorf("layer %s: written by another writer midway", r.w.desc.Digest)
			}
			return 0, err
		}
		r.cur, r.chunk = b, b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.read += int64(n)
	return n, nil
}

// Close waits for the write, the rest of the stream dropped if it was
// not read to its end. A failed write is the error: it says what was
// wrong with the layer itself (a digest mismatch), whatever the apply met.
func (r *tapReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if !r.eof {
		close(r.t.quit)
	}
	<-r.w.done
	var err error
	if r.store != nil {
		err = r.store.Close()
	}
	if r.w.err != nil {
		return &layerWriteError{r.w.err}
	}
	return err
}
