package layerlimit

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Guard wraps rc, a layer's verified stream on its way into the content
// store, so that the same bytes are counted (Check) in a goroutine of
// their own, overlapping with the write. A stream whose content passes the
// cap fails at once, before its end, so the store never commits it; one
// that cannot be decompressed fails at its end, unless rc failed first (a
// digest mismatch is the better report).
func (c Cap) Guard(rc io.ReadCloser) io.ReadCloser {
	g := &guardedReader{
		rc:   rc,
		q:    make(chan []byte, guardBuffers),
		free: make(chan []byte, guardBuffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go g.count(c)
	return g
}

// At most guardBuffers chunks of guardChunk bytes are in flight between
// the reader and the counter: the memory a guarded stream holds, beside
// the decompressor's own (a gzip window, or zstd's capped one).
const (
	guardChunk   = 256 << 10
	guardBuffers = 4
)

type guardedReader struct {
	rc io.ReadCloser

	q     chan []byte   // chunks for the counter; closed at the end of input
	free  chan []byte   // chunks the counter is done with
	nbufs int           // chunks allocated (reader side only)
	stop  chan struct{} // closed by Close: the counter must quit
	done  chan struct{} // closed when the counter has quit
	off   atomic.Bool   // the counter wants no more input

	mu       sync.Mutex
	bomb     error // set by the counter when the cap is passed
	badInput error // set by the counter when the content cannot be decoded

	err       error // sticky result of Read
	qClosed   bool
	closeOnce sync.Once
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.verdict(false); err != nil {
		g.err = err
		return 0, err
	}
	n, err := g.rc.Read(p)
	if n > 0 {
		g.feed(p[:n])
	}
	switch {
	case err == io.EOF:
		// The blob is whole and verified; it is good only if it does not
		// expand too far either: wait for the count.
		g.endInput()
		<-g.done
		if v := g.verdict(true); v != nil {
			g.err = v
			return n, v
		}
		g.err = io.EOF
	case err != nil:
		g.err = err
	default:
		if v := g.verdict(false); v != nil {
			g.err = v
			return n, v
		}
	}
	return n, err
}

// Close stops the counter, waits for it, and closes the stream.
func (g *guardedReader) Close() error {
	g.closeOnce.Do(func() { close(g.stop) })
	<-g.done
	return g.rc.Close()
}

// verdict is the counter's finding: a bomb at any time, an undecodable
// stream only at the end.
func (g *guardedReader) verdict(atEnd bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bomb != nil {
		return g.bomb
	}
	if atEnd {
		return g.badInput
	}
	return nil
}

// feed copies p into chunks for the counter; it blocks only while
// guardBuffers chunks wait to be counted.
func (g *guardedReader) feed(p []byte) {
	for len(p) > 0 && !g.off.Load() {
		var b []byte
		select {
		case b = <-g.free:
		default:
			if g.nbufs < guardBuffers {
				g.nbufs++
				b = make([]byte, guardChunk)
				break
			}
			select {
			case b = <-g.free:
			case <-g.done:
				return
			}
		}
		b = b[:copy(b[:cap(b)], p)]
		p = p[len(b):]
		g.q <- b // never blocks: there are only guardBuffers chunks
	}
}

func (g *guardedReader) endInput() {
	if !g.qClosed {
		g.qClosed = true
		close(g.q)
	}
}

var errGuardStopped = errors.New("guard stopped")

// count is the counter goroutine.
func (g *guardedReader) count(c Cap) {
	defer close(g.done)
	defer g.off.Store(true)
	err := c.count(&chunkReader{g: g})
	if err == nil || errors.Is(err, errGuardStopped) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var u undecodable
	if errors.As(err, &u) {
		g.badInput = err
	} else {
		g.bomb = err
	}
}

// chunkReader reads the counter's input from the queue.
type chunkReader struct {
	g   *guardedReader
	cur []byte // unread part of buf
	buf []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.buf != nil {
			c.g.free <- c.buf // never blocks: free has room for every chunk
			c.buf = nil
		}
		select {
		case b, ok := <-c.g.q:
			if !ok {
				return 0, io.EOF
			}
			c.buf, c.cur = b, b
		case <-c.g.stop:
			return 0, errGuardStopped
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}
