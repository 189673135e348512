// Package pusher fills a site's registry from seeds: `ctr-seed push`.
// Every named image of the seeds (and the signatures and referrers they
// carry) is pushed with containerd's own push machinery
// (core/remotes.PushContent through the docker resolver), the seeds as
// the content provider; every document (index, manifest, config) is
// read whole, capped and checked against its digest before anything is
// sent, every other blob verified as it streams out of the seed; what
// the registry has is not sent, a blob pushed to another repository of
// the same registry in the same run is mounted (a manifest is PUT in
// each repository); manifests go after their blobs, an index's by
// digest, so a corrupt seed pushes no manifest under the name of the
// image it belongs to.
package pusher

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/blobprogress"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// Options say where a push goes.
type Options struct {
	// To is HOST[:PORT][/PREFIX], the site registry and a path prefix.
	To string
	// Flat drops the image's own registry host from the repository
	// (hauler's layout): docker.io/library/alpine → PREFIX/library/alpine.
	Flat bool
	// Concurrency bounds the blobs pushed at once; default 3.
	Concurrency int
	// Progress is told of every blob uploaded; nil: nothing is.
	Progress blobprogress.Observer
	// LastWins pushes every image that names a tag another image of the
	// seeds names too (with another digest), in order, so that the last
	// one wins, with a warning; otherwise the first is pushed and the
	// others fail.
	LastWins bool
}

// ImageResult is one image pushed (or not).
type ImageResult struct {
	Seed, Name, Target string // Target: the reference pushed to
	Digest             digest.Digest
	Uploaded, Existing int   // blobs sent, blobs the registry had
	Mounted            int   // blobs mounted from another repository
	Bytes              int64 // bytes sent
	// Partial counts the manifests an index names that the seed does
	// not hold (other platforms): not pushed.
	Partial int
	// Warning is said of an image pushed anyway: with LastWins, the tag
	// another image of the seeds named too.
	Warning string
	Err     error
}

// Target is where name goes under opts: HOST/PREFIX/<registry>/<path>:tag
// (or without the registry when Flat).
//
// A registry with a port (registry.local:5000) is a path component
// registry.local_5000: a repository path cannot hold a colon.
func Target(name string, opts Options) (string, error) {
	n, err := distref.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	repo := PathOf(distref.Domain(n)) + "/" + distref.Path(n)
	if opts.Flat {
		repo = distref.Path(n)
	}
	ref := strings.TrimSuffix(opts.To, "/") + "/" + repo
	switch r := n.(type) {
	case distref.Canonical:
		ref += "@" + r.Digest().String()
	case distref.Tagged:
		ref += ":" + r.Tag()
	default:
		ref += ":latest"
	}
	return ref, nil
}

// PathOf is registry's name as a component of a repository path.
func PathOf(registry string) string { return strings.ReplaceAll(registry, ":", "_") }

// Push pushes every named image of seeds through resolver. Each image
// lands or fails on its own.
func Push(ctx context.Context, seeds fetcher.Seeds, resolver remotes.Resolver, opts Options) ([]ImageResult, error) {
	if opts.To == "" {
		return nil, fmt.Errorf("push: no registry to push to: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 3
	}
	p := &run{seeds: seeds, resolver: resolver, opts: opts, pushedTo: map[digest.Digest]string{},
		limiter: semaphore.NewWeighted(int64(opts.Concurrency))}
	var results []ImageResult
	for _, j := range p.plan(ctx) {
		if j.err != nil {
			results = append(results, ImageResult{Seed: j.seed.Path(), Name: j.name, Target: j.target, Digest: j.img.Target.Digest, Err: j.err})
			continue
		}
		r := p.pushImage(ctx, j.seed, j.name, j.img.Target)
		r.Warning = j.warning
		results = append(results, r)
		if r.Err == nil && len(j.referrers) > 0 {
			results = append(results, p.pushReferrers(ctx, j.seed, j.name, j.img.Target.Digest, j.referrers)...)
		}
	}
	return results, nil
}

// job is one image under one name, to push or refused.
type job struct {
	seed         *fetcher.Seed
	img          fetcher.Image
	name, target string
	referrers    []ocispec.Descriptor
	warning      string
	err          error
}

// plan lists the images of the seeds under each of their names, in
// order, refusing a name pinned to another digest than its image's and,
// unless LastWins, a tag an earlier image of the seeds names with another
// digest.
func (p *run) plan(ctx context.Context) []job {
	var jobs []job
	first := map[string]job{} // target tag → the first job naming it
	for _, s := range p.seeds {
		imgs, err := s.Images(ctx)
		if err != nil {
			jobs = append(jobs, job{seed: s, err: err})
			continue
		}
		refs := referrersOf(imgs)
		for _, img := range imgs {
			if img.Err != nil {
				jobs = append(jobs, job{seed: s, img: img, err: img.Err})
				continue
			}
			for _, name := range namesOf(img) {
				j := job{seed: s, img: img, name: name, referrers: refs[img.Target.Digest]}
				j.target, j.err = Target(name, p.opts)
				d := img.Target.Digest
				pin := pinnedTo(name)
				f, seen := first[j.target]
				switch {
				case j.err != nil:
					j.err = fmt.Errorf("seed %s: %w", s.Path(), j.err)
				case pin != "" && pin != d:
					j.err = fmt.Errorf("seed %s: image %s: the name is pinned to %s, but its entry is %s: not pushed under it: %w",
						s.Path(), name, pin, d, errdefs.ErrInvalidArgument)
				case pin != "":
				case !seen:
					first[j.target] = j
				case f.img.Target.Digest != d:
					said := fmt.Sprintf("seed %s: image %s (%s) → %s: seed %s names this tag too, as %s (%s)",
						s.Path(), name, d, j.target, f.seed.Path(), f.name, f.img.Target.Digest)
					if p.opts.LastWins {
						j.warning = said + "; the last one wins (--last-wins)"
					} else {
						j.err = fmt.Errorf("%s: not pushed over it (--last-wins pushes the last one): %w", said, errdefs.ErrFailedPrecondition)
					}
				}
				jobs = append(jobs, j)
			}
		}
	}
	return jobs
}

// pinnedTo is the digest a name is pinned to (REPO@sha256:...), if any.
func pinnedTo(name string) digest.Digest {
	if n, err := distref.ParseNormalizedNamed(name); err == nil {
		if c, ok := n.(distref.Canonical); ok {
			return c.Digest()
		}
	}
	return ""
}

// namesOf are the names an entry is pushed under: its own, and its
// docker RepoTags; a referrer (no name, a subject) has none: it goes by
// digest with its subject (referrers.go).
func namesOf(img fetcher.Image) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range append([]string{img.Name}, img.RepoTags...) {
		if full, err := fetcher.NormalizeRef(n); err == nil && n != "" && !seen[full] {
			seen[full] = true
			out = append(out, full)
		}
	}
	return out
}

// run is one push: what it pushed where, for mounts.
type run struct {
	seeds    fetcher.Seeds
	resolver remotes.Resolver
	opts     Options
	limiter  *semaphore.Weighted

	mu       sync.Mutex
	pushedTo map[digest.Digest]string // blob → repository (no host) it is in
}

func (p *run) pushImage(ctx context.Context, s *fetcher.Seed, name string, desc ocispec.Descriptor) ImageResult {
	r := ImageResult{Seed: s.Path(), Name: name, Digest: desc.Digest}
	target, err := Target(name, p.opts)
	if err != nil {
		r.Err = err
		return r
	}
	r.Target = target
	tn, err := distref.ParseNormalizedNamed(target)
	if err != nil {
		r.Err = fmt.Errorf("seed %s: image %s: target %s: %v: %w", s.Path(), name, target, err, errdefs.ErrInvalidArgument)
		return r
	}
	repo := distref.Path(tn)
	host := distref.Domain(tn)
	desc.Annotations = nil
	// Every document is checked before anything is sent.
	docs, err := readDocuments(ctx, p.seeds, desc)
	if err != nil {
		r.Err = fmt.Errorf("seed %s: image %s (%s) → %s: %w", s.Path(), name, desc.Digest, target, err)
		return r
	}
	pusher, err := p.resolver.Pusher(ctx, target)
	if err != nil {
		r.Err = fmt.Errorf("image %s: %w", name, err)
		return r
	}
	byDigest, err := p.resolver.Pusher(ctx, host+"/"+repo+"@"+desc.Digest.String())
	if err != nil {
		r.Err = fmt.Errorf("image %s: %w", name, err)
		return r
	}
	cp := &counting{Pusher: pusher, byDigest: byDigest, root: desc.Digest, docs: docs, run: p, repo: repo, progress: blobprogress.Or(p.opts.Progress)}
	// containerd keys a blob's source by the registry's host name, port
	// left out, as its pulls label blobs.
	provider := &sourced{seeds: p.seeds, docs: docs, run: p, host: hostName(host)}
	// An index whose other platforms the seed left out (save's default):
	// push what the seed holds; the index itself keeps its digest.
	present := func(h images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			children, err := h.Handle(ctx, d)
			if err != nil || !images.IsIndexType(d.MediaType) {
				return children, err
			}
			kept := children[:0]
			for _, c := range children {
				if p.seeds.Has(c) {
					kept = append(kept, c)
				} else {
					r.Partial++
				}
			}
			return kept, nil
		})
	}
	err = remotes.PushContent(ctx, cp, desc, provider, p.limiter, platforms.All, present)
	if err != nil && r.Partial > 0 {
		err = fmt.Errorf("%w (the seed holds %d fewer platform manifests than its index names, and this registry refuses an index whose manifests it lacks: save the seed with --all-platforms)", err, r.Partial)
	}
	cp.mu.Lock()
	r.Uploaded, r.Existing, r.Mounted, r.Bytes = cp.uploaded, cp.existing, cp.mounted, cp.bytes
	cp.mu.Unlock()
	if err != nil {
		r.Err = fmt.Errorf("seed %s: image %s (%s) → %s: %w", s.Path(), name, desc.Digest, target, err)
	}
	return r
}

// hostName is host without its port.
func hostName(host string) string {
	if u, err := url.Parse("dummy://" + host); err == nil {
		return u.Hostname()
	}
	return host
}

// manifestish: indexes and manifests go by reference, after their blobs.
func manifestish(mt string) bool { return images.IsManifestType(mt) || images.IsIndexType(mt) }
