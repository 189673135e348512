package importer

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/introspection"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/unpack"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer/contentstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// Services are the containerd services an import works through, and
// nothing else: the daemon's over its socket or in its process
// (FromClient), or stores opened in a directory (the unit tests). The
// read-only pass of a re-import (see landOnce) wraps them as a whole.
type Services struct {
	Content content.Store
	Images  images.Store
	// Snapshotter returns the named snapshotter, nil if there is none.
	Snapshotter func(name string) snapshots.Snapshotter
	Leases      leases.Manager
	// Applier applies the layers this process cannot apply itself (the
	// daemon's diff service; see applierFor).
	Applier diff.Applier
	// Namespaces are searched for the leases of killed imports; nil: only
	// the namespace of the import.
	Namespaces namespaces.Store
	// Introspection tells the snapshotter's capabilities (with rebase,
	// layers are applied in parallel); nil: none, one layer at a time.
	Introspection introspection.Service
	// Limiter bounds the blob work of every import that shares it; nil:
	// the process's (DefaultLimiter).
	Limiter *Limiter
}

// FromClient is the services of c. Its content store streams blob writes
// when c talks to the daemon over gRPC (see contentstream).
func FromClient(c *client.Client) Services {
	return Services{
		Content:       contentstream.New(c.ContentStore(), c.Conn()),
		Images:        c.ImageService(),
		Snapshotter:   c.SnapshotService,
		Leases:        c.LeasesService(),
		Applier:       c.DiffService(),
		Namespaces:    c.NamespaceService(),
		Introspection: c.IntrospectionService(),
	}
}

// check says which service an importer with opts would miss.
func (s Services) check(opts Options) error {
	missing := ""
	switch {
	case s.Content == nil:
		missing = "content store"
	case s.Images == nil:
		missing = "image store"
	case s.Leases == nil:
		missing = "lease manager"
	case !opts.NoUnpack && s.Snapshotter == nil:
		missing = "snapshotter"
	case !opts.NoUnpack && s.Applier == nil:
		missing = "diff applier"
	}
	if missing != "" {
		return fmt.Errorf("importer: no %s: %w", missing, errdefs.ErrInvalidArgument)
	}
	return nil
}

// snapshotter is the snapshotter the options name.
func (im *Importer) snapshotter() (snapshots.Snapshotter, error) {
	if sn := im.svc.Snapshotter(im.opts.Snapshotter); sn != nil {
		return sn, nil
	}
	return nil, fmt.Errorf("snapshotter %q: %w", im.opts.Snapshotter, errdefs.ErrNotFound)
}

// snapshotterCapabilities asks introspection for the capabilities of the
// snapshotter name, as the client's GetSnapshotterCapabilities does.
func (s Services) snapshotterCapabilities(ctx context.Context, name string) ([]string, error) {
	if s.Introspection == nil {
		return nil, nil
	}
	resp, err := s.Introspection.Plugins(ctx, fmt.Sprintf("type==%s, id==%s", plugins.SnapshotPlugin, name))
	if err != nil {
		return nil, err
	}
	if len(resp.Plugins) == 0 {
		return nil, fmt.Errorf("no such snapshotter plugin: %w", errdefs.ErrNotFound)
	}
	return resp.Plugins[0].Capabilities, nil
}

// Limiter bounds the blob work of every import that shares it, whatever
// each import's own Options allow (Concurrency, UnpackConcurrency bound
// it within): the blobs being copied into the content store at once, and
// the layers being applied at once. containerd's transfer service keeps
// one such set for all its transfers (core/transfer/local); a bound per
// import would not bound a process that imports its seeds directory,
// --in-daemon requests and image lists at the same time. Blobs from seeds
// and blobs from registries have a bound each, so that a slow registry
// holds only registry slots, never a seed's.
type Limiter struct {
	seeds, registry, applies unpack.Limiter
}

// NewLimiter bounds the blobs copied at once (from seeds, and from
// registries apart) and the layers applied at once; zero or less is the
// default of each (see DefaultLimiter).
func NewLimiter(blobs, applies int) *Limiter {
	if blobs <= 0 {
		blobs = defaultConcurrency + runtime.NumCPU()
	}
	if applies <= 0 {
		applies = runtime.NumCPU()
	}
	return &Limiter{seeds: semaphore.NewWeighted(int64(blobs)), registry: semaphore.NewWeighted(int64(blobs)),
		applies: semaphore.NewWeighted(int64(applies))}
}

// defaultLimiter is shared by every importer of the process made without
// a Limiter of its own.
var defaultLimiter = NewLimiter(0, 0)

// DefaultLimiter is the process's limiter: as many blobs from seeds (and
// as many from registries) as one import copies at most (its walk's
// Concurrency and one layer per applier), and a layer applied per CPU; so
// one import alone is not slowed by it, and two at once share what one
// would use.
func DefaultLimiter() *Limiter { return defaultLimiter }

// both acquires from a call's own limiter, then from the shared one.
type both struct{ own, shared unpack.Limiter }

func (b both) Acquire(ctx context.Context, n int64) error {
	if err := b.own.Acquire(ctx, n); err != nil {
		return err
	}
	if err := b.shared.Acquire(ctx, n); err != nil {
		b.own.Release(n)
		return err
	}
	return nil
}

func (b both) Release(n int64) {
	b.shared.Release(n)
	b.own.Release(n)
}

// limitedFetcher holds a slot of l from Fetch until the blob's reader is
// closed: while its bytes are copied into the store.
type limitedFetcher struct {
	remotes.Fetcher
	l unpack.Limiter
}

func (f limitedFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := f.l.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	rc, err := f.Fetcher.Fetch(ctx, desc)
	if err != nil {
		f.l.Release(1)
		return nil, err
	}
	return &releasing{ReadCloser: rc, release: sync.OnceFunc(func() { f.l.Release(1) })}, nil
}

type releasing struct {
	io.ReadCloser
	release func()
}

func (r *releasing) Close() error {
	defer r.release()
	return r.ReadCloser.Close()
}
