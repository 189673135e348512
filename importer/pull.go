package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/ctr-seed/ctr-seed/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pull resolves ref through r (seeds first, then the registry), writes its
// content — every blob a seed holds from the seed — unpacks it and records
// it under the resolved name, like `ctr images pull`.
func (im *Importer) Pull(ctx context.Context, r *fetcher.Resolver, ref string) (res ImageResult, err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			res.Err = fmt.Errorf("pulling %s: %w", ref, err)
			err = res.Err
		}
		res.Duration = time.Since(start)
		im.opts.Observer.ImageDone(res)
	}()
	name, desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return res, err
	}
	res.Names, res.Target, res.MediaType = []string{name}, desc.Digest, desc.MediaType
	if err := pinnedElsewhere(name, desc.Digest); err != nil {
		return res, fmt.Errorf("%s: %w", desc.Digest, err)
	}
	if res.Warning, err = im.verifyPull(ctx, r, name, desc); err != nil {
		return res, err
	}
	f, err := r.Fetcher(ctx, name)
	if err != nil {
		return res, err
	}
	limit := 1
	if im.opts.AllPlatforms {
		limit = 0
	}
	l := im.newRunLease(ctx)
	got, err := landOnce(ctx, im, l, func(ctx context.Context, im *Importer) (landed, error) {
		out := landed{names: []string{name}}
		var err error
		if out.fromSeed, out.fromRegistry, out.fromStore, err = im.transfer(ctx, job{desc: desc, name: name, fetcher: f, seeds: r.Seeds(), limit: limit}); err != nil {
			return out, err
		}
		if err = im.record(ctx, name, desc, im.opts.PullLabels); err != nil {
			return out, err
		}
		if im.opts.DigestRefs {
			refs, err := im.recordDigestRefs(ctx, out.names, desc, im.opts.PullLabels)
			out.names = append(out.names, refs...)
			return out, err
		}
		return out, nil
	})
	res.FromSeed, res.FromRegistry, res.FromStore, res.Names = got.fromSeed, got.fromRegistry, got.fromStore, got.names
	if err != nil {
		err = fmt.Errorf("%s: %w", desc.Digest, err)
	}
	if derr := l.end(ctx); err == nil {
		err = derr
	}
	return res, err
}

// verifyPull checks the image about to be pulled against the trust
// policy, by its signatures in the seeds or the registry.
func (im *Importer) verifyPull(ctx context.Context, r *fetcher.Resolver, name string, desc ocispec.Descriptor) (string, error) {
	if im.policy == nil {
		return "", nil
	}
	sigs, err := r.Signatures(ctx, name, desc.Digest)
	if err != nil {
		return "", fmt.Errorf("%s: signature: %w", desc.Digest, err)
	}
	v, err := im.policy.Verify(sigs, desc.Digest, []string{name})
	if err == nil {
		err = v.Refused[name]
	}
	if err != nil {
		return "", fmt.Errorf("%s: signature: %w", desc.Digest, err)
	}
	return v.Warning, nil
}
