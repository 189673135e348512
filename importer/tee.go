package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer/applier"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// layerTee reads each layer once for both the content store and the
// in-process applier. containerd's unpacker applies a layer only once its
// fetch handler has returned, so a layer was written into the store, then
// read from its seed a second time to be applied: two passes, one after
// the other. Here the unpacker's fetch of a layer the store lacks returns
// at once and leaves the layer pending; the applier, asking for the
// layer, starts its write with a tap on the stream, so store write,
// digest, decompression, diffID and file creation run as one pipeline.
// The applier's stream ends only once the blob is committed (verified by
// the store against its digest), so no snapshot commits on a blob that
// did not land. A pending layer no applier asks for (its snapshot exists,
// or its platform is not unpacked) is written by finish.
type layerTee struct {
	ctx   context.Context // the transfer's: its lease covers the writes
	inner images.Handler  // the walk's handler: checks, fetch, labels
	cs    content.InfoProvider

	mu      sync.Mutex
	pending map[digest.Digest]*teeWrite
}

// teeWrite is one pending layer write.
type teeWrite struct {
	desc    ocispec.Descriptor
	started bool
	tap     *tap // nil: written without an applier reading along
	done    chan struct{}
	err     error
}

func newLayerTee(ctx context.Context, inner images.Handler, cs content.InfoProvider) *layerTee {
	return &layerTee{ctx: ctx, inner: inner, cs: cs, pending: map[digest.Digest]*teeWrite{}}
}

// Handle is the handler the unpacker fetches through.
func (t *layerTee) Handle(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsLayerType(desc.MediaType) {
		return t.inner.Handle(ctx, desc)
	}
	if err := desc.Digest.Validate(); err != nil {
		return t.inner.Handle(ctx, desc) // refused there, in the usual words
	}
	if _, err := t.cs.Info(ctx, desc.Digest); err == nil {
		return t.inner.Handle(ctx, desc) // in the store: nothing to write
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[desc.Digest] == nil {
		t.pending[desc.Digest] = &teeWrite{desc: desc, done: make(chan struct{})}
	}
	return nil, nil
}

// open returns the layer's stream for the applier: the tap on its write,
// when the write is pending. ok is false when this run has no pending
// write of it (the store had it), or its write was started by another
// reader and has ended: the caller reads its usual copy.
func (t *layerTee) open(desc ocispec.Descriptor, fromStore applier.OpenFunc) (rc io.ReadCloser, ok bool) {
	t.mu.Lock()
	w := t.pending[desc.Digest]
	if w == nil {
		t.mu.Unlock()
		return nil, false
	}
	if w.started {
		t.mu.Unlock()
		<-w.done
		return nil, false
	}
	w.tap = newTap()
	t.start(w)
	t.mu.Unlock()
	return &tapReader{t: w.tap, w: w, fallback: func() (io.ReadCloser, error) {
		log.G(t.ctx).WithField("digest", desc.Digest).Debug("layer committed by another writer first: applied from the store")
		return fromStore(t.ctx, desc)
	}}, true
}

// start runs w's write; t.mu is held.
func (t *layerTee) start(w *teeWrite) {
	w.started = true
	go func() {
		defer close(w.done)
		_, err := t.inner.Handle(t.ctx, w.desc)
		if errors.Is(err, images.ErrSkipDesc) {
			err = nil
		}
		w.err = err
		if w.tap != nil {
			w.tap.close(err)
		}
	}()
}

// tapFor is the tap of desc's write, for the fetcher to feed; nil if none.
func (t *layerTee) tapFor(d digest.Digest) *tap {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.pending[d]; w != nil && w.tap != nil {
		w.tap.fed = true
		return w.tap
	}
	return nil
}

// finish writes the pending layers no applier asked for, unless the
// transfer failed (err), and waits for every write; it returns err, or
// the writes' errors.
func (t *layerTee) finish(err error, concurrency int) error {
	t.mu.Lock()
	var all, idle []*teeWrite
	for _, w := range t.pending {
		all = append(all, w)
		if !w.started {
			idle = append(idle, w)
		}
	}
	t.mu.Unlock()
	if err == nil {
		var g errgroup.Group
		g.SetLimit(concurrency)
		for _, w := range idle {
			g.Go(func() error {
				t.mu.Lock()
				if !w.started {
					t.start(w)
				}
				t.mu.Unlock()
				<-w.done
				return w.err
			})
		}
		err = g.Wait()
	}
	for _, w := range all {
		t.mu.Lock()
		started := w.started
		t.mu.Unlock()
		if started {
			<-w.done
		}
	}
	return err
}

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

// layerWriteError is a teed layer's failed write, as the applier returns
// it: the transfer reports the write's own error, not the unpacker's
// "failed to extract layer" around it.
type layerWriteError struct{ err error }

func (e *layerWriteError) Error() string { return e.err.Error() }
func (e *layerWriteError) Unwrap() error { return e.err }

// writeCause is err, or the layer write error it holds.
func writeCause(err error) error {
	var we *layerWriteError
	if errors.As(err, &we) {
		return we.err
	}
	return err
}
