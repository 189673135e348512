package applier

import (
	"errors"
	"io"
	"sync"
)

// readAhead decompresses in a goroutine of its own, a few chunks ahead of
// the tar reader: inflating a big layer is the longest single task of an
// import (about 220 MB/s for klauspost's gzip here), and the reader's
// diffID hashing and file writes then run beside it instead of after it.
type readAhead struct {
	ch   chan aheadChunk
	quit chan struct{}
	done chan struct{}
	cur  []byte
	held *[]byte
	err  error
}

type aheadChunk struct {
	b   *[]byte
	n   int
	err error
}

const (
	aheadChunks    = 4
	aheadChunkSize = 256 << 10
)

var aheadPool = sync.Pool{New: func() any { b := make([]byte, aheadChunkSize); return &b }}

// newReadAhead owns src from now on: it is closed when the goroutine ends.
func newReadAhead(src io.ReadCloser) *readAhead {
	r := &readAhead{ch: make(chan aheadChunk, aheadChunks), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer src.Close()
		for {
			bp := aheadPool.Get().(*[]byte)
			n, err := io.ReadFull(src, *bp)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			select {
			case r.ch <- aheadChunk{bp, n, err}:
			case <-r.quit:
				aheadPool.Put(bp)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *readAhead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.held != nil {
			aheadPool.Put(r.held)
			r.held = nil
		}
		if r.err != nil {
			return 0, r.err
		}
		c := <-r.ch
		r.cur, r.held, r.err = (*c.b)[:c.n], c.b, c.err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine (after at most one more read of the source)
// and waits for it, so the source is closed when Close returns.
func (r *readAhead) Close() error {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.done
	return nil
}
