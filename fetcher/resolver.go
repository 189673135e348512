package fetcher

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Resolver resolves references in the seeds first and in the registry
// second, and fetches every blob any seed holds from that seed, whatever
// resolved the reference. It is a remotes.Resolver, so containerd's image
// handlers (and the importer) use it unchanged.
type Resolver struct {
	seeds  Seeds
	remote remotes.Resolver // nil: offline

	fromSeed, fromRegistry atomic.Int64
}

// NewResolver serves from seeds, falling back to remote; a nil remote
// means offline: what no seed has is not found.
func NewResolver(seeds Seeds, remote remotes.Resolver) *Resolver {
	return &Resolver{seeds: seeds, remote: remote}
}

var _ remotes.Resolver = (*Resolver)(nil)

// Seeds returns the seeds the resolver reads.
func (r *Resolver) Seeds() Seeds { return r.seeds }

// Bytes reports how many blob bytes were served from seeds and from the
// registry so far.
func (r *Resolver) Bytes() (fromSeed, fromRegistry int64) {
	return r.fromSeed.Load(), r.fromRegistry.Load()
}

// Resolve implements remotes.Resolver.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	name, desc, err := r.seeds.Resolve(ctx, ref)
	if err == nil || !errdefs.IsNotFound(err) {
		return name, desc, err
	}
	if r.remote == nil {
		return "", ocispec.Descriptor{}, fmt.Errorf("%w (offline: no registry fallback)", err)
	}
	// The registry gets the normalised name too (alpine →
	// docker.io/library/alpine:latest), as ctr would send it.
	q, err := parseQuery(ref)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	log.G(ctx).WithField("ref", q.ref).Debug("not in seeds, resolving in registry")
	return r.remote.Resolve(ctx, q.ref)
}

// Fetcher implements remotes.Resolver.
func (r *Resolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	return &fetcher{r: r, ref: ref}, nil
}

// Pusher implements remotes.Resolver; seeds are read-only.
func (r *Resolver) Pusher(ctx context.Context, ref string) (remotes.Pusher, error) {
	return nil, fmt.Errorf("pushing to seeds: %w", errdefs.ErrNotImplemented)
}

type fetcher struct {
	r   *Resolver
	ref string

	once   sync.Once
	remote remotes.Fetcher
	err    error
}

// Fetch serves desc from a seed when any holds it, else from the registry.
func (f *fetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := f.r.seeds.find(desc)
	if s != nil {
		rc, err := s.Fetch(ctx, desc)
		if err != nil {
			return nil, err
		}
		return countingReader{rc, &f.r.fromSeed}, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, err
	}
	if f.r.remote == nil {
		return nil, fmt.Errorf("blob %s: not in any seed (offline: no registry fallback): %w", desc.Digest, errdefs.ErrNotFound)
	}
	f.once.Do(func() { f.remote, f.err = f.r.remote.Fetcher(ctx, f.ref) })
	if f.err != nil {
		return nil, fmt.Errorf("registry fetcher for %s: %w", f.ref, f.err)
	}
	log.G(ctx).WithField("digest", desc.Digest).Debug("fetching from registry")
	rc, err := f.remote.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("blob %s from registry: %w", desc.Digest, err)
	}
	return countingReader{newVerifier(rc, rc, "registry "+f.ref, desc.Digest, desc.Size), &f.r.fromRegistry}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
