package importer

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// planNames lists the records landing g would make, before anything is
// written: containerd's own transfer image store names each entry (so the
// names are ctr's) into a store that keeps nothing; an image nothing
// names gets its digest name (see landGroup). The names are what the
// checks (pins, signatures) are about: each is a claim of the seed's.
func (im *Importer) planNames(ctx context.Context, s *fetcher.Seed, st *image.Store, g *entryGroup) ([]images.Image, error) {
	var plan dryImages
	for _, e := range g.entries {
		if _, err := im.recordEntry(ctx, st, &plan, e); err != nil {
			return nil, err
		}
	}
	if len(plan) == 0 && im.opts.IndexName == "" && unnamed(g.entries) {
		// Nothing names it (docker's RepoTags null, a cosign save layout's
		// entries): it is recorded under its digest, as ctr's --digests
		// names it (BASE@sha256:…, or import-<date>@sha256:…), so that a
		// record keeps its content.
		labels := im.imageLabels(ctx)
		maps.Copy(labels, provenance(s))
		plan = append(plan, images.Image{Name: im.digestPrefix() + "@" + g.desc.Digest.String(), Target: g.desc, Labels: labels})
	}
	return plan, nil
}

// checkNames keeps, of the records plan of the image g, those whose names
// may be recorded: not pinned to another digest than g's, and (with a
// trust policy) in a repository a valid signature of g names. Each name
// refused is a result of its own, an error naming the seed, the name and
// the digest. err refuses the whole image (no valid signature, none at
// all); warning is said of an unsigned image let in.
func (im *Importer) checkNames(ctx context.Context, s *fetcher.Seed, g *entryGroup, plan []images.Image) (keep []images.Image, refused []ImageResult, warning string, err error) {
	why := map[string]error{}
	var order, names []string
	refuse := func(name string, err error) {
		if why[name] == nil {
			why[name] = err
			order = append(order, name)
		}
	}
	for _, img := range plan {
		if err := pinnedElsewhere(img.Name, g.desc.Digest); err != nil {
			refuse(img.Name, err)
		} else if !slices.Contains(names, img.Name) {
			names = append(names, img.Name)
		}
	}
	if im.policy != nil && (len(names) > 0 || len(order) == 0) {
		v, err := im.policy.Check(ctx, s, g.desc.Digest, names)
		if err != nil {
			return nil, nil, "", fmt.Errorf("signature: %w", err)
		}
		warning = v.Warning
		for _, n := range names {
			if err := v.Refused[n]; err != nil && unnamed(g.entries) {
				// Its only names are the digest names the options made.
				refuse(n, fmt.Errorf("signature: the seed names the image not: %w (--base-name the signed repository, or --verify-ignore-identity)", err))
			} else if err != nil {
				refuse(n, fmt.Errorf("signature: %w", err))
			}
		}
	}
	for _, n := range order {
		refused = append(refused, ImageResult{Seed: s.Path(), Target: g.desc.Digest, MediaType: g.desc.MediaType,
			Err: fmt.Errorf("seed %s: image %q (%s): %w", s.Path(), n, g.desc.Digest, why[n])})
	}
	for _, img := range plan {
		if why[img.Name] == nil {
			keep = append(keep, img)
		}
	}
	return keep, refused, warning, nil
}

// pinnedElsewhere refuses a name pinned to a digest (REPO@sha256:X) that
// is not target: recorded, REPO@X would resolve to other content than X
// (ctr records it so), and a signature of target would vouch for it.
func pinnedElsewhere(name string, target digest.Digest) error {
	ref, err := distref.ParseNormalizedNamed(name)
	if err != nil {
		return nil // not a reference: no pin (containerd decides on the name)
	}
	if c, ok := ref.(distref.Canonical); ok && c.Digest() != target {
		return fmt.Errorf("the name pins %s, not the image's digest: %w", c.Digest(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// dryImages is an image store that keeps the records it is asked to make,
// and writes nothing: the plan of planNames.
type dryImages []images.Image

func (d *dryImages) Create(_ context.Context, img images.Image) (images.Image, error) {
	*d = append(*d, img)
	return img, nil
}

func (d *dryImages) Get(context.Context, string) (images.Image, error) {
	return images.Image{}, errdefs.ErrNotFound
}

func (d *dryImages) List(context.Context, ...string) ([]images.Image, error) { return nil, nil }

func (d *dryImages) Update(_ context.Context, img images.Image, _ ...string) (images.Image, error) {
	return img, nil
}

func (d *dryImages) Delete(context.Context, string, ...images.DeleteOpt) error { return nil }
