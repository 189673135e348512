package importer

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// runBlobs is what this run learnt about the blobs it wrote: which were
// read from a seed to their end (so verified: the applier may read that
// copy again without hashing it), and which layers passed the bomb cap on
// their way into the store (so the daemon may apply them as they are).
type runBlobs struct {
	mu       sync.Mutex
	verified map[digest.Digest]bool
	capped   map[digest.Digest]bool
	// held are the blobs of the image a seed holds; fetched, those this
	// run asked a source for. The rest of held the store had already.
	held, fetched map[digest.Digest]bool
}

func newRunBlobs() *runBlobs {
	return &runBlobs{verified: map[digest.Digest]bool{}, capped: map[digest.Digest]bool{},
		held: map[digest.Digest]bool{}, fetched: map[digest.Digest]bool{}}
}

func (b *runBlobs) markHeld(d digest.Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held[d] = true
}

func (b *runBlobs) isHeld(d digest.Digest) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held[d]
}

func (b *runBlobs) markFetched(d digest.Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetched[d] = true
}

// fromStore counts the blobs a seed holds that were taken from the store
// instead (never read from the seed: a corrupt seed copy goes unseen).
func (b *runBlobs) fromStore() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for d := range b.held {
		if !b.fetched[d] {
			n++
		}
	}
	return n
}

// record notes a blob whose stream reached its end without error.
func (b *runBlobs) record(d digest.Digest, fromSeed, capped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.verified[d] = b.verified[d] || fromSeed
	b.capped[d] = b.capped[d] || capped
}

func (b *runBlobs) isVerifiedFromSeed(d digest.Digest) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.verified[d]
}

func (b *runBlobs) isCapped(d digest.Digest) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.capped[d]
}

// writeFetcher is what containerd's FetchHandler reads blobs through: it
// tells the observer about each, counts bytes by origin, records what the
// run verified, and, when guard is set, holds every layer to the bomb cap
// as it streams (for layers the daemon will apply). It is only asked for
// blobs the store lacks: the FetchHandler checks the store first.
type writeFetcher struct {
	inner    remotes.Fetcher // a fetcher.Resolver's
	image    string
	obs      Observer
	seed     *atomic.Int64
	registry *atomic.Int64
	blobs    *runBlobs
	guard    *layerlimit.Limits // nil: layers are capped when applied
	guardOn  func() bool        // whether guard applies to this run's layers (asked per layer)
	tee      *layerTee          // layers the applier reads along with the write
	limits   *Limiter           // the process's: a slot per blob while it is copied
	// owed are the blobs read to their end whose BlobDone waits for
	// their commit (see committing).
	owed sync.Map
}

func (f *writeFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	f.blobs.markFetched(desc.Digest)
	// A seed's slot for a blob a seed holds (the fetcher reads it there),
	// else a registry's.
	l := f.limits.registry
	if f.blobs.isHeld(desc.Digest) {
		l = f.limits.seeds
	}
	if err := l.Acquire(ctx, 1); err != nil {
		f.obs.BlobDone(desc.Digest, err)
		return nil, err
	}
	release := sync.OnceFunc(func() { l.Release(1) })
	rc, err := f.inner.Fetch(ctx, desc)
	if err != nil {
		release()
		f.obs.BlobDone(desc.Digest, err)
		return nil, err
	}
	r := &observedReader{rc: rc, desc: desc, obs: f.obs, blobs: f.blobs, n: f.registry, owed: &f.owed, release: release}
	src := FromRegistry
	if fetcher.OriginOf(rc) == fetcher.OriginSeed {
		src, r.n, r.fromSeed = FromSeed, f.seed, true
	}
	if f.guard != nil {
		if c, ok := f.guard.Cap(desc); ok && f.guardOn() {
			r.rc, r.capped = c.Guard(rc), true
		}
	}
	f.obs.BlobStarted(f.image, desc.Digest, desc.Size, src)
	if t := f.tee.tapFor(desc.Digest); t != nil {
		return &tapFeeder{observedReader: r, t: t}, nil
	}
	return r, nil
}

// tapFeeder hands what the store's writer reads to the layer's tap too.
type tapFeeder struct {
	*observedReader
	t *tap
}

func (f *tapFeeder) Read(p []byte) (int, error) {
	n, err := f.observedReader.Read(p)
	if n > 0 {
		f.t.write(p[:n])
	}
	return n, err
}

type observedReader struct {
	rc       io.ReadCloser
	desc     ocispec.Descriptor
	obs      Observer
	n        *atomic.Int64
	blobs    *runBlobs
	fromSeed bool
	capped   bool // rc holds the layer to the bomb cap
	done     bool
	owed     *sync.Map
	release  func() // gives back the blob's slot (see Limiter)
}

func (r *observedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.n.Add(int64(n))
		r.obs.BlobProgress(r.desc.Digest, int64(n))
	}
	if err != nil && !r.done {
		r.done = true
		if err == io.EOF {
			// The stream reached its end without error: verified (and,
			// if guarded, under the cap). Done once it is committed.
			r.blobs.record(r.desc.Digest, r.fromSeed, r.capped)
			r.owed.Store(r.desc.Digest, true)
		} else {
			r.obs.BlobDone(r.desc.Digest, err)
		}
	}
	return n, err
}

// Close before the end means the write was abandoned (cancelled, daemon
// gone, disk full): the blob is reported failed, never written.
func (r *observedReader) Close() error {
	defer r.release()
	if !r.done {
		r.done = true
		r.obs.BlobDone(r.desc.Digest, fmt.Errorf("blob %s: closed before the end of its content", r.desc.Digest))
	}
	return r.rc.Close()
}

// committing is the content store the fetch handler writes through: a
// blob read to its end is done (Observer.BlobDone) when the store has
// committed it, or failed when its commit fails or never comes. Between
// the end of the read and the commit the daemon still checks and syncs
// the blob; an import stopped then must not have said it wrote it.
type committing struct {
	content.Ingester
	f *writeFetcher
}

func (c committing) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	w, err := c.Ingester.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &committingWriter{Writer: w, d: wo.Desc.Digest, f: c.f}, nil
}

type committingWriter struct {
	content.Writer
	d digest.Digest
	f *writeFetcher
}

func (w *committingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	if err != nil && errdefs.IsAlreadyExists(err) {
		w.settle(nil)
	} else {
		w.settle(err)
	}
	return err
}

func (w *committingWriter) Close() error {
	err := w.Writer.Close()
	w.settle(fmt.Errorf("blob %s: not committed", w.d))
	return err
}

// settle tells the observer how the blob ended, if that is still owed.
func (w *committingWriter) settle(err error) {
	if _, owed := w.f.owed.LoadAndDelete(w.d); owed {
		w.f.obs.BlobDone(w.d, err)
	}
}
