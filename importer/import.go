package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/ctr-seed/ctr-seed/fetcher"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Import imports every image of every seed. Blobs are served from any of
// the seeds, never from a registry. Each image lands or fails on its own:
// the results say which, and the error joins the failures.
func (im *Importer) Import(ctx context.Context, seeds fetcher.Seeds) ([]ImageResult, error) {
	ctx, done, err := im.withLease(ctx)
	if err != nil {
		return nil, err
	}
	var results []ImageResult
	for _, s := range seeds {
		results = append(results, im.importSeed(ctx, s, seeds)...)
	}
	if err := done(); err != nil {
		return results, err
	}
	return results, failures(ctx, results)
}

// entryGroup is the top-level entries of a seed that share one target.
type entryGroup struct {
	desc    ocispec.Descriptor
	entries []ocispec.Descriptor
	name    string // first full reference among the entries, for labels
}

func (im *Importer) importSeed(ctx context.Context, s *fetcher.Seed, all fetcher.Seeds) []ImageResult {
	imgs, err := s.Images(ctx)
	if err != nil {
		return []ImageResult{{Seed: s.Path(), Target: s.Index().Digest, Err: err}}
	}
	var groups []*entryGroup
	byDigest := map[digest.Digest]*entryGroup{}
	for _, img := range imgs {
		g := byDigest[img.Target.Digest]
		if g == nil {
			g = &entryGroup{desc: img.Target}
			byDigest[img.Target.Digest] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, img.Target)
		if n := img.Target.Annotations[images.AnnotationImageName]; g.name == "" && n != "" {
			g.name = n
		}
	}
	f, _ := fetcher.NewResolver(all, nil).Fetcher(ctx, "")
	st := im.namer(ctx)
	var results []ImageResult
	failed := false
	for _, g := range groups {
		r := im.importGroup(ctx, s, all, f, st, g)
		failed = failed || r.Err != nil
		im.opts.Observer.ImageDone(r)
		results = append(results, r)
	}
	// The index gets a record only when asked (--index-name, --digests),
	// and only when every image it points to landed.
	if (im.opts.IndexName != "" || im.opts.Digests) && !failed {
		r := ImageResult{Seed: s.Path(), Target: s.Index().Digest, MediaType: s.Index().MediaType}
		if err := im.writeIndex(ctx, f, s.Index()); err != nil {
			r.Err = err
		} else {
			r.Names, r.Err = im.store(ctx, st, s.Index())
		}
		if r.Err != nil {
			r.Err = fmt.Errorf("seed %s: index %s: %w", s.Path(), s.Index().Digest, r.Err)
		}
		if len(r.Names) > 0 || r.Err != nil {
			im.opts.Observer.ImageDone(r)
			results = append(results, r)
		}
	}
	return results
}

func (im *Importer) importGroup(ctx context.Context, s *fetcher.Seed, all fetcher.Seeds, f remotes.Fetcher, st *image.Store, g *entryGroup) ImageResult {
	start := time.Now()
	r := ImageResult{Seed: s.Path(), Target: g.desc.Digest, MediaType: g.desc.MediaType}
	label := fetcher.Name(g.desc, nil)
	if label == "" {
		label = "<none>"
	}
	if p := g.desc.Platform; p != nil && !im.platformMatcher().Match(*p) {
		// An entry for another platform: ctr's import still names it but
		// imports none of its content; store its root so the name does
		// not dangle, and do the same.
		_, r.Err = images.Handlers(checkSeeds(all), im.fetchHandler(f)).Handle(ctx, g.desc)
	} else {
		r.FromSeed, r.FromRegistry, r.Err = im.transfer(ctx, job{desc: g.desc, name: g.name, fetcher: f, seeds: all})
	}
	if r.Err == nil {
		for _, e := range g.entries {
			names, err := im.recordEntry(ctx, st, e)
			if err != nil {
				r.Err = err
				break
			}
			r.Names = append(r.Names, names...)
		}
	}
	if r.Err != nil {
		r.Err = fmt.Errorf("seed %s: image %s (%s): %w", s.Path(), label, g.desc.Digest, stopCause(ctx, r.Err))
	}
	r.Duration = time.Since(start)
	return r
}

// writeIndex stores the seed's index itself with GC references to its
// manifests, for the records that name it.
func (im *Importer) writeIndex(ctx context.Context, f remotes.Fetcher, idx ocispec.Descriptor) error {
	cs := im.client.ContentStore()
	if _, err := im.fetchHandler(f)(ctx, idx); err != nil {
		return err
	}
	_, err := images.SetChildrenMappedLabels(cs, images.ChildrenHandler(cs), nil)(ctx, idx)
	return err
}
