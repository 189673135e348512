package fetcher

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Resolver resolves references in the seeds first and in the registry
// second, and fetches every blob any seed holds from that seed, whatever
// resolved the reference. It is a remotes.Resolver, so containerd's image
// handlers (and the importer) use it unchanged.
type Resolver struct {
	seeds  Seeds
	remote remotes.Resolver // nil: offline
}

// NewResolver serves from seeds, falling back to remote; a nil remote
// means offline: what no seed has is not found.
func NewResolver(seeds Seeds, remote remotes.Resolver) *Resolver {
	return &Resolver{seeds: seeds, remote: remote}
}

var _ remotes.Resolver = (*Resolver)(nil)

// Seeds returns the seeds the resolver reads.
func (r *Resolver) Seeds() Seeds { return r.seeds }

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
	return &seedFirstFetcher{r: r, ref: ref}, nil
}

// Pusher implements remotes.Resolver; seeds are read-only.
func (r *Resolver) Pusher(ctx context.Context, ref string) (remotes.Pusher, error) {
	return nil, fmt.Errorf("pushing to seeds: %w", errdefs.ErrNotImplemented)
}

// SeedsFetcher fetches blobs from seeds only, as an import does: there is
// no registry to fall back on, offline or not.
func SeedsFetcher(seeds Seeds) remotes.Fetcher {
	return &seedFirstFetcher{r: NewResolver(seeds, nil), seedsOnly: true}
}

// SeedsFetcherFor is SeedsFetcher for a caller that names the seed home
// in its own errors (the importer, importing home's images): an error of
// home's is its OwnError, so the line says the seed once; another seed's
// still names it.
func SeedsFetcherFor(home string, seeds Seeds) remotes.Fetcher {
	return &seedFirstFetcher{r: NewResolver(seeds, nil), seedsOnly: true, home: home}
}

// seedFirstFetcher fetches from the seeds, else from the registry.
type seedFirstFetcher struct {
	r         *Resolver
	ref       string
	seedsOnly bool
	home      string // a seed whose errors are told without its name (SeedsFetcherFor)

	once   sync.Once
	remote remotes.Fetcher
	err    error
}

// Fetch serves desc from a seed when any holds it, else from the registry;
// OriginOf tells which.
func (f *seedFirstFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := f.r.seeds.find(desc)
	if s != nil {
		rc, err := s.Fetch(ctx, desc)
		if err != nil {
			return nil, OwnError(err, f.home)
		}
		if f.home != "" {
			rc = ownReader{rc, f.home}
		}
		return originReader{rc, OriginSeed}, nil
	}
	err = OwnError(err, f.home)
	if !errdefs.IsNotFound(err) {
		return nil, err
	}
	if f.r.remote == nil {
		if base, ok := f.r.seeds.omitted(ctx, desc.Digest); ok {
			return nil, fmt.Errorf("blob %s: left out of this delta seed, made for inventory %s; not on this node: %w", desc.Digest, Escape(base), errdefs.ErrNotFound)
		}
		if f.seedsOnly {
			return nil, fmt.Errorf("blob %s: not in the seeds: %w", desc.Digest, errdefs.ErrNotFound)
		}
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
	return originReader{newVerifier(rc, rc, "registry "+f.ref, desc.Digest, desc.Size), OriginRegistry}, nil
}

// Origin is where a blob's bytes come from.
type Origin string

const (
	OriginSeed     Origin = "seed"
	OriginRegistry Origin = "registry"
)

// OriginOf tells where a reader a Resolver's fetcher returned reads from;
// "" for any other reader.
func OriginOf(rc io.Reader) Origin {
	if o, ok := rc.(originReader); ok {
		return o.origin
	}
	return ""
}

type originReader struct {
	io.ReadCloser
	origin Origin
}

// FetchReferrers lists the registry's OCI 1.1 referrers of dgst (seeds are
// asked by Seed.Referrers); none when offline or the registry's fetcher
// cannot list them.
func (f *seedFirstFetcher) FetchReferrers(ctx context.Context, dgst digest.Digest, opts ...remotes.FetchReferrersOpt) ([]ocispec.Descriptor, error) {
	if f.r.remote == nil || f.seedsOnly {
		return nil, nil
	}
	f.once.Do(func() { f.remote, f.err = f.r.remote.Fetcher(ctx, f.ref) })
	if f.err != nil {
		return nil, fmt.Errorf("registry fetcher for %s: %w", f.ref, f.err)
	}
	rf, ok := f.remote.(remotes.ReferrersFetcher)
	if !ok {
		return nil, nil
	}
	return rf.FetchReferrers(ctx, dgst, opts...)
}
