package importer

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
)

// pipeIngester gives large blobs writers that write in their own
// goroutine, so reading a blob from a seed (and hashing it) overlaps with
// the store's hashing and writing (in the daemon's process, for
// --in-daemon and the plugin) or with sending it over the socket.
type pipeIngester struct{ content.Ingester }

const (
	pipeMinSize = 8 << 20
	pipeChunk   = 1 << 20
	pipeChunks  = 4
)

func (p pipeIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := p.Ingester.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	var o content.WriterOpts
	for _, opt := range opts {
		_ = opt(&o)
	}
	if o.Desc.Size < pipeMinSize {
		return w, nil
	}
	return &pipeWriter{Writer: w, free: make(chan []byte, pipeChunks)}, nil
}

// pipeWriter queues copies of what is written; a goroutine writes them in
// order. Anything but Write waits for the queue to drain first. A write
// error surfaces on the next call.
type pipeWriter struct {
	content.Writer
	q    chan []byte
	free chan []byte
	done chan struct{}
	made int

	mu  sync.Mutex
	err error
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	if w.q == nil {
		w.q, w.done = make(chan []byte, pipeChunks), make(chan struct{})
		go w.drain(w.q, w.done)
	}
	n := len(p)
	for len(p) > 0 {
		var c []byte
		select {
		case c = <-w.free:
		default:
			if w.made < pipeChunks {
				c, w.made = make([]byte, pipeChunk), w.made+1
			} else {
				c = <-w.free
			}
		}
		m := copy(c[:cap(c)], p)
		w.q <- c[:m]
		p = p[m:]
	}
	return n, nil
}

func (w *pipeWriter) drain(q <-chan []byte, done chan<- struct{}) {
	defer close(done)
	for c := range q {
		if w.failed() == nil {
			if _, err := w.Writer.Write(c); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
		w.free <- c // never blocks: free holds every chunk made
	}
}

func (w *pipeWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// flush waits for every queued write.
func (w *pipeWriter) flush() error {
	if w.q != nil {
		close(w.q)
		<-w.done
		w.q = nil
	}
	return w.failed()
}

func (w *pipeWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.Writer.Commit(ctx, size, expected, opts...)
}

func (w *pipeWriter) Close() error {
	w.flush()
	return w.Writer.Close()
}

func (w *pipeWriter) Digest() digest.Digest {
	w.flush()
	return w.Writer.Digest()
}

func (w *pipeWriter) Status() (content.Status, error) {
	if err := w.flush(); err != nil {
		return content.Status{}, err
	}
	return w.Writer.Status()
}

func (w *pipeWriter) Truncate(size int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.Writer.Truncate(size)
}
