package importer

import (
	"context"
	"errors"
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
	// on says whether layers are applied in this process (asked at the
	// first layer); when not, the tee passes every layer through.
	on func() bool

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

func newLayerTee(ctx context.Context, inner images.Handler, cs content.InfoProvider, on func() bool) *layerTee {
	return &layerTee{ctx: ctx, inner: inner, cs: cs, on: on, pending: map[digest.Digest]*teeWrite{}}
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
	if !t.on() {
		return t.inner.Handle(ctx, desc) // the daemon applies it from the store
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
