package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Import imports every image of every seed. Blobs are served from any of
// the seeds, never from a registry. Each image lands or fails on its own:
// the results say which, and the error joins the failures.
func (im *Importer) Import(ctx context.Context, seeds fetcher.Seeds) ([]ImageResult, error) {
	l := im.newRunLease(ctx)
	var results []ImageResult
	for _, s := range seeds {
		results = append(results, im.importSeed(ctx, s, seeds, l)...)
	}
	if err := l.end(ctx); err != nil {
		return results, err
	}
	return results, failures(ctx, results)
}

// ImportPaths opens the seeds paths name with fetcher.OpenAll and imports
// those that open together, as Import does. A seed that does not open is
// a failed result, a file skipped beside the seeds a skipped one, each
// told to the Observer first; the others still import. The error is
// Summarize's over every result, or what stopped the run.
func (im *Importer) ImportPaths(ctx context.Context, paths []string, fopts ...fetcher.Opt) ([]ImageResult, error) {
	seeds, unopened := fetcher.OpenAll(ctx, paths, fopts...)
	defer seeds.Close()
	var results []ImageResult
	for _, u := range unopened {
		r := ImageResult{Seed: u.Path, Err: u.Err, Skipped: u.Skipped}
		im.opts.Observer.ImageDone(r)
		results = append(results, r)
	}
	if len(seeds) > 0 {
		rs, err := im.Import(ctx, seeds)
		results = append(results, rs...)
		if err != nil && !errors.Is(err, ErrImagesFailed) {
			return results, err
		}
	}
	return results, Summarize(results).Err()
}

// entryGroup is the top-level entries of a seed that share one target.
type entryGroup struct {
	desc    ocispec.Descriptor
	entries []ocispec.Descriptor
	name    string // first full reference among the entries, for labels
}

func (im *Importer) importSeed(ctx context.Context, s *fetcher.Seed, all fetcher.Seeds, l *runLease) []ImageResult {
	imgs, err := s.Images(ctx)
	if err == nil && len(imgs) == 0 {
		err = fmt.Errorf("seed %s: no images: its index lists none: %w", s.Path(), errdefs.ErrNotFound)
	}
	if err != nil {
		r := ImageResult{Seed: s.Path(), Target: s.Index().Digest, Err: err}
		im.opts.Observer.ImageDone(r)
		return []ImageResult{r}
	}
	// Entries naming the same blob the same way are one image (its tags);
	// an entry that describes the blob differently (another media type or
	// size) is an image of its own, checked on its own, so that a lying
	// entry fails alone and names itself.
	type key struct {
		d    digest.Digest
		mt   string
		size int64
	}
	var groups []*entryGroup
	byKey := map[key]*entryGroup{}
	var results []ImageResult
	for _, img := range imgs {
		if img.Err != nil {
			r := ImageResult{Seed: s.Path(), Target: img.Target.Digest, MediaType: img.Target.MediaType, Err: img.Err}
			im.opts.Observer.ImageDone(r)
			results = append(results, r)
			continue
		}
		k := key{img.Target.Digest, img.Target.MediaType, img.Target.Size}
		g := byKey[k]
		if g == nil {
			g = &entryGroup{desc: img.Target}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, img.Target)
		if n := img.Target.Annotations[images.AnnotationImageName]; g.name == "" && n != "" {
			g.name = n
		}
	}
	f := fetcher.SeedsFetcherFor(s.Path(), all)
	st := im.namer(ctx, provenance(s))
	failed := len(results) > 0
	skipped := 0
	for _, g := range groups {
		for _, r := range im.importGroup(ctx, s, all, f, st, g, l) {
			failed = failed || r.Err != nil
			if r.Skipped != "" {
				skipped++
			}
			im.opts.Observer.ImageDone(r)
			results = append(results, r)
		}
	}
	if skipped == len(results) {
		why := fmt.Errorf("seed %s: nothing for %s: every image is for another platform (use --platform or --all-platforms): %w",
			s.Path(), im.platformsText(), errdefs.ErrNotFound)
		for _, r := range results {
			if !strings.HasPrefix(r.Skipped, skippedPlatform) {
				why = fmt.Errorf("seed %s: no container image to import: every entry is skipped (%s): %w", s.Path(), r.Skipped, errdefs.ErrNotFound)
				break
			}
		}
		r := ImageResult{Seed: s.Path(), Target: s.Index().Digest, MediaType: s.Index().MediaType, Err: why}
		im.opts.Observer.ImageDone(r)
		return append(results, r)
	}
	// The index gets a record only when asked (--index-name, --digests),
	// and only when every image it points to landed.
	if (im.opts.IndexName != "" || im.opts.Digests) && !failed {
		r := ImageResult{Seed: s.Path(), Target: s.Index().Digest, MediaType: s.Index().MediaType}
		r.Names, r.Err = landOnce(ctx, im, l, func(ctx context.Context, im *Importer) ([]string, error) {
			if err := im.writeIndex(ctx, f, s.Index()); err != nil {
				return nil, err
			}
			return store(ctx, st, keepLabels{im.svc.Images}, s.Index())
		})
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

// importGroup imports the image g: its result, after one result per
// name refused (see checkNames); none of its own when every name is.
func (im *Importer) importGroup(ctx context.Context, s *fetcher.Seed, all fetcher.Seeds, f remotes.Fetcher, st *image.Store, g *entryGroup, l *runLease) []ImageResult {
	start := time.Now()
	r := ImageResult{Seed: s.Path(), Target: g.desc.Digest, MediaType: g.desc.MediaType}
	var refused []ImageResult
	label := fetcher.Name(g.desc, nil)
	if label == "" {
		label = "<none>"
	}
	if fetcher.IsCosignArtifact(g.desc) {
		// cosign's own layout (cosign save): the signatures or
		// attestations of the image beside them, not an image to run.
		kind := g.desc.Annotations[fetcher.AnnotationCosignKind]
		_, what, _ := strings.Cut(kind, "/")
		r.Skipped = fmt.Sprintf("%s of an image of the seed (%s), not an image", fetcher.Escape(what), fetcher.Escape(kind))
		r.Duration = time.Since(start)
		return []ImageResult{r}
	} else if why := notAnImage(ctx, s, g.desc); why != "" {
		// An OCI artifact (a helm chart, a signature, an SBOM) beside the
		// images, as zarf's and oras's layouts hold them: nothing to run.
		r.Skipped = why
		r.Duration = time.Since(start)
		return []ImageResult{r}
	} else if !images.IsManifestType(g.desc.MediaType) && !images.IsIndexType(g.desc.MediaType) {
		r.Err = fmt.Errorf("index entry has media type %q, not an image manifest or index: %w", g.desc.MediaType, errdefs.ErrInvalidArgument)
	} else if p := g.desc.Platform; p != nil && !im.platformMatcher().Match(*p) {
		// An entry for another platform: ctr's import names it with no
		// content, a record nothing can run; it is left out instead.
		r.Skipped = fmt.Sprintf(skippedPlatform+"%s, not %s", fetcher.FormatPlatforms([]ocispec.Platform{*p}), im.platformsText())
		r.Duration = time.Since(start)
		return []ImageResult{r}
	} else if plan, err := im.planNames(ctx, s, st, g); err != nil {
		r.Err = err
	} else if plan, refused, r.Warning, r.Err = im.checkNames(ctx, s, g, plan); r.Err == nil {
		if len(plan) == 0 && len(refused) > 0 {
			return refused // every name refused: nothing is written
		}
		if !slices.ContainsFunc(plan, func(img images.Image) bool { return img.Name == g.name }) {
			g.name = "" // no distribution source from a name not recorded
		}
		// Checked (or nothing asked): only now is anything written.
		var got landed
		got, r.Err = landOnce(ctx, im, l, func(ctx context.Context, im *Importer) (landed, error) {
			return im.landGroup(ctx, s, all, f, g, plan)
		})
		r.FromSeed, r.FromRegistry, r.FromStore, r.Signatures, r.Names = got.fromSeed, got.fromRegistry, got.fromStore, got.signatures, got.names
	}
	if r.Err != nil {
		r.Err = fmt.Errorf("seed %s: image %s (%s): %w", s.Path(), label, g.desc.Digest, stopCause(ctx, r.Err))
	}
	r.Duration = time.Since(start)
	return append(refused, r)
}

// landed is what landGroup did.
type landed struct {
	fromSeed, fromRegistry int64
	fromStore, signatures  int
	names                  []string
}

// landGroup writes and unpacks the image g, keeps its signatures and
// makes the records plan (see planNames, checkNames).
func (im *Importer) landGroup(ctx context.Context, s *fetcher.Seed, all fetcher.Seeds, f remotes.Fetcher, g *entryGroup, plan []images.Image) (r landed, err error) {
	if r.fromSeed, r.fromRegistry, r.fromStore, err = im.transfer(ctx, job{desc: g.desc, name: g.name, fetcher: f, seeds: all}); err != nil {
		return r, err
	}
	if err = im.checkUsable(ctx, g.desc); err != nil {
		return r, err
	}
	if r.signatures, err = im.keepSignatures(ctx, s, f, g.desc); err != nil {
		return r, err
	}
	for _, img := range plan {
		if err := im.create(ctx, img); err != nil {
			return r, fmt.Errorf("creating image records: %w", err)
		}
		r.names = append(r.names, img.Name)
	}
	if im.opts.DigestRefs {
		// Only from the names recorded: each is in a repository checked.
		refs, err := im.recordDigestRefs(ctx, r.names, g.desc, provenance(s))
		r.names = append(r.names, refs...)
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// writeIndex stores the seed's index itself with GC references to its
// manifests, for the records that name it.
func (im *Importer) writeIndex(ctx context.Context, f remotes.Fetcher, idx ocispec.Descriptor) error {
	cs := im.svc.Content
	if _, err := im.fetchHandler(f)(ctx, idx); err != nil {
		return err
	}
	_, err := images.SetChildrenMappedLabels(cs, images.ChildrenHandler(cs), nil)(ctx, idx)
	return err
}

// checkUsable fails an image that landed without what its platforms need:
// an index with no manifest for the platforms imported (its others were
// filtered out), a manifest for another OS than the ones unpacked, or a
// manifest whose config or layers are not in the store. ctr's import
// would record such an image ("image might be filtered out" at best);
// kubelet would see it and could not run it.
func (im *Importer) checkUsable(ctx context.Context, desc ocispec.Descriptor) error {
	if im.opts.AllPlatforms {
		return nil
	}
	cs := im.svc.Content
	matcher := im.platformMatcher()
	if !images.IsIndexType(desc.MediaType) {
		// A manifest is imported whatever its platform, and unpacked when
		// its OS is one unpacked (as ctr does): only its OS must fit.
		have, err := images.Platforms(ctx, cs, desc)
		if err != nil {
			return err
		}
		fits := false
		for _, p := range im.unpackPlatforms() {
			for _, h := range have {
				fits = fits || platforms.OnlyOS(p).Match(h)
			}
		}
		if !fits {
			return fmt.Errorf("a manifest for %s: nothing for %s (use --platform): %w",
				fetcher.FormatPlatforms(have), im.platformsText(), errdefs.ErrNotFound)
		}
		matcher = platforms.All
	}
	available, _, _, missing, err := images.Check(ctx, cs, desc, matcher)
	switch {
	case err != nil:
		return err
	case !available:
		return fmt.Errorf("no manifest for %s in the index (use --platform or --all-platforms): image might be filtered out: %w",
			im.platformsText(), errdefs.ErrNotFound)
	case len(missing) > 0 && !(im.opts.DiscardUnpackedLayers && !im.opts.NoUnpack):
		return fmt.Errorf("incomplete: %s %s of its manifest never reached the content store: %w", fetcher.Escape(missing[0].MediaType), missing[0].Digest, errdefs.ErrNotFound)
	}
	return nil
}

// platformsText names the platforms unpacked, for errors.
func (im *Importer) platformsText() string {
	return fetcher.FormatPlatforms(im.unpackPlatforms())
}

// unnamed: no entry carries a name annotation at all (names outside
// --base-name are filtered out on purpose, as by ctr, and not recorded).
func unnamed(entries []ocispec.Descriptor) bool {
	for _, e := range entries {
		if e.Annotations[images.AnnotationImageName] != "" || e.Annotations[ocispec.AnnotationRefName] != "" {
			return false
		}
	}
	return true
}

// skippedPlatform starts the reason of an entry left out for its platform.
const skippedPlatform = "an entry for "

// notAnImage says why the manifest desc (read from the seed) is no
// container image, or "" if it is one or cannot tell: a config type no
// image has (a helm chart's), or no layer an image has (a signature's
// payload, an SBOM).
func notAnImage(ctx context.Context, s *fetcher.Seed, desc ocispec.Descriptor) string {
	if !images.IsManifestType(desc.MediaType) {
		return ""
	}
	b, err := s.ReadBlob(ctx, desc)
	if err != nil {
		return "" // the transfer says what is wrong
	}
	var m ocispec.Manifest
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	if !images.IsKnownConfig(m.Config.MediaType) {
		return fmt.Sprintf("not a container image: an artifact (config %s)", fetcher.Escape(m.Config.MediaType))
	}
	for _, l := range m.Layers {
		if images.IsLayerType(l.MediaType) {
			return ""
		}
	}
	if len(m.Layers) == 0 {
		return ""
	}
	return fmt.Sprintf("not a container image: an artifact (layers %s)", fetcher.Escape(m.Layers[0].MediaType))
}
