// Package saver writes seeds on the connected side: `ctr-seed save`. The
// images come from seeds, the local containerd or a registry (sources.go);
// the archive is containerd's own exporter's (core/images/archive: an OCI
// image layout tar with a docker manifest.json, entries named as `ctr
// images export` names them), so every reader of ctr's archives reads it,
// and it is byte-identical for the same images and options. A delta seed
// (inventory.go) leaves out the layers every given node already holds.
package saver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations a delta seed carries on each top-level entry of its index.
const (
	// AnnotationDeltaBase names the inventories the seed was made against.
	AnnotationDeltaBase = fetcher.AnnotationDeltaBase
	// AnnotationDeltaOmitted lists, comma-separated, the layer digests of
	// the entry's image the seed leaves out (the nodes hold them).
	AnnotationDeltaOmitted = fetcher.AnnotationDeltaOmitted
)

// Sources are where a save takes images from, in this order.
type Sources struct {
	Seeds fetcher.Seeds
	// Store and Images are the local containerd's (--from-containerd);
	// nil: not asked.
	Store  content.Store
	Images images.Store
	// Registry resolves what neither holds; nil: offline.
	Registry remotes.Resolver
}

// Options are what a save writes.
type Options struct {
	Platforms    []ocispec.Platform // none: the host's
	AllPlatforms bool
	// Have are node inventories: a layer every one of them holds is left
	// out (a delta seed).
	Have []*Inventory
	// Compress compresses the archive as a whole: "gzip", "zstd" or ""
	// (none). Both are deterministic, as the tar is.
	Compress string
	// Progress is told of every blob copied; nil: nothing is.
	Progress Progress
	// NoSignatures leaves out the images' cosign signatures (saved by
	// default, from the seeds or the registry).
	NoSignatures bool
}

// Result summarises a save.
type Result struct {
	Images       []string
	Blobs        int   // blobs written
	Bytes        int64 // bytes of blobs written
	Omitted      int   // layers left out (delta)
	OmittedBytes int64
	Signatures   int // signature manifests saved beside the images
	Attachments  int // attestations and SBOMs saved beside the images
}

// Save writes one seed holding every image refs name to w.
func Save(ctx context.Context, w io.Writer, refs []string, src Sources, opts Options) (Result, error) {
	var res Result
	resolver := fetcher.NewResolver(src.Seeds, src.Registry)
	srcs := &sources{seeds: src.Seeds, store: src.Store, sizes: map[digest.Digest]int64{}, asked: map[digest.Digest]bool{}, listed: map[digest.Digest]bool{}, progress: progressOf(opts.Progress)}
	type entry struct {
		name string
		desc ocispec.Descriptor
	}
	var entries []entry
	for _, ref := range refs {
		name, desc, err := resolve(ctx, resolver, src, ref)
		if err != nil {
			return res, fmt.Errorf("%s: %w", ref, err)
		}
		if src.Registry != nil {
			f, err := resolver.Fetcher(ctx, name)
			if err != nil {
				return res, fmt.Errorf("%s: %w", ref, err)
			}
			srcs.remotes = append(srcs.remotes, f)
		}
		srcs.learn(desc)
		entries = append(entries, entry{name, desc})
		res.Images = append(res.Images, name)
	}

	matcher := platforms.Ordered(platforms.DefaultSpec())
	if len(opts.Platforms) > 0 {
		matcher = platforms.Ordered(opts.Platforms...)
	}
	var xopts []archive.ExportOpt
	if opts.AllPlatforms {
		xopts = append(xopts, archive.WithAllPlatforms())
	} else {
		xopts = append(xopts, archive.WithPlatform(matcher))
	}
	if len(opts.Have) > 0 {
		// A delta seed is for ctr-seed on the nodes it was made for: a
		// docker manifest.json would promise docker load layers the seed
		// leaves out.
		xopts = append(xopts, archive.WithSkipDockerManifest())
	}
	omitted := map[digest.Digest]int64{}
	sigConfigs := map[string]bool{} // manifest.json's names of signature configs
	for _, e := range entries {
		desc := e.desc
		if len(opts.Have) > 0 {
			left, err := leftOut(ctx, srcs, desc, opts, matcher)
			if err != nil {
				return res, fmt.Errorf("%s: %w", e.name, err)
			}
			if len(left) > 0 {
				desc.Annotations = map[string]string{
					AnnotationDeltaBase:    inventoryNames(opts.Have),
					AnnotationDeltaOmitted: joinDigests(left),
				}
				for _, l := range left {
					omitted[l.Digest] = l.Size
				}
			}
		}
		if !opts.NoSignatures {
			// Marked as cosign save marks its image, so that cosign
			// reads the layout (cosign verify --local-image).
			desc.Annotations = maps.Clone(desc.Annotations)
			if desc.Annotations == nil {
				desc.Annotations = map[string]string{}
			}
			desc.Annotations[fetcher.AnnotationCosignKind] = cosignImageKind(desc)
		}
		xopts = append(xopts, archive.WithManifest(desc, e.name))
		if opts.NoSignatures {
			continue
		}
		sigs, err := signaturesOf(ctx, resolver, src, e.name, e.desc)
		if err != nil {
			return res, fmt.Errorf("%s: signatures: %w", e.name, err)
		}
		for _, sig := range sigs {
			srcs.learn(sig.desc)
			cfg, err := configOf(ctx, srcs, sig.desc)
			if err != nil {
				return res, fmt.Errorf("%s: %s %s: %w", e.name, sig.kind, sig.desc.Digest, err)
			}
			sigConfigs["blobs/"+cfg.Algorithm().String()+"/"+cfg.Encoded()] = true
			d := sig.desc
			d.Annotations = map[string]string{fetcher.AnnotationCosignKind: sig.kind}
			xopts = append(xopts, archive.WithManifest(d, sig.name))
			if sig.kind == fetcher.CosignSigs {
				res.Signatures++
			} else {
				res.Attachments++
			}
		}
	}
	if !opts.NoSignatures {
		xopts = append(xopts, archive.WithReferrersProvider(srcs))
	}
	xopts = append(xopts, archive.WithBlobFilter(func(d ocispec.Descriptor) bool {
		if _, ok := omitted[d.Digest]; ok && images.IsLayerType(d.MediaType) {
			return false
		}
		res.Blobs++
		res.Bytes += d.Size
		return true
	}))
	cw, err := compressor(w, opts.Compress)
	if err != nil {
		return res, err
	}
	st := newStableTar(cw, sigConfigs)
	if err := st.Close(archive.Export(ctx, srcs, st, xopts...)); err != nil {
		return res, err
	}
	if err := cw.Close(); err != nil {
		return res, err
	}
	res.Omitted = len(omitted)
	for _, n := range omitted {
		res.OmittedBytes += n
	}
	return res, nil
}

// resolve finds ref in the seeds, then the local containerd, then the
// registry: the first that knows it names the image.
func resolve(ctx context.Context, r *fetcher.Resolver, src Sources, ref string) (string, ocispec.Descriptor, error) {
	name, desc, err := src.Seeds.Resolve(ctx, ref)
	if err == nil || !errdefs.IsNotFound(err) {
		return name, desc, err
	}
	if src.Images != nil {
		full, perr := fetcher.NormalizeRef(ref)
		if perr != nil {
			return "", ocispec.Descriptor{}, perr
		}
		if img, err := src.Images.Get(ctx, full); err == nil {
			d := img.Target
			d.Annotations = nil
			return full, d, nil
		}
	}
	return r.Resolve(ctx, ref)
}

// leftOut lists the layers of desc (on the platforms saved) that every
// inventory holds.
func leftOut(ctx context.Context, p content.Provider, desc ocispec.Descriptor, opts Options, m platforms.MatchComparer) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	h := images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsLayerType(d.MediaType) && !seen[d.Digest] {
			seen[d.Digest] = true
			if allHave(opts.Have, d) {
				out = append(out, d)
			}
		}
		return nil, nil
	})
	children := images.ChildrenHandler(p)
	if !opts.AllPlatforms {
		children = images.FilterPlatforms(children, m)
	}
	if err := images.Walk(ctx, images.Handlers(h, children), desc); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out, nil
}

func allHave(invs []*Inventory, d ocispec.Descriptor) bool {
	for _, inv := range invs {
		if !inv.Has(d) {
			return false
		}
	}
	return len(invs) > 0
}

func joinDigests(ds []ocispec.Descriptor) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Digest.String()
	}
	return strings.Join(s, ",")
}

func inventoryNames(invs []*Inventory) string {
	s := make([]string, len(invs))
	for i, inv := range invs {
		s[i] = inv.Node
	}
	return strings.Join(s, ",")
}

// compressor wraps w in the whole-archive compression asked for. One zstd
// encoder thread, so the output is the same on every machine.
func compressor(w io.Writer, c string) (io.WriteCloser, error) {
	switch c {
	case "":
		return nopCloser{w}, nil
	case "gzip":
		return gzip.NewWriter(w), nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("compression %q: want gzip, zstd or none: %w", c, errdefs.ErrInvalidArgument)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// signature is one cosign attachment of an image (signatures, an
// attestation, an SBOM), its name and the kind its entry is marked with.
type signature struct {
	name, kind string
	desc       ocispec.Descriptor
}

// signaturesOf finds the cosign attachments of the image name (desc),
// named as cosign v2 tags them (REPO:sha256-<hex>.sig, .att, .sbom): in the
// seeds first, then the registry. None is no error.
func signaturesOf(ctx context.Context, r *fetcher.Resolver, src Sources, name string, desc ocispec.Descriptor) ([]signature, error) {
	spec, err := reference.Parse(name)
	if err != nil {
		return nil, nil
	}
	var out []signature
	for _, suffix := range []string{"sig", "att", "sbom"} {
		kind := fetcher.AttachmentSuffixes[suffix]
		tagged := spec.Locator + ":" + fetcher.AttachmentTag(desc.Digest, suffix)
		found := false
		for _, s := range src.Seeds {
			ms, err := s.Attachments(ctx, desc.Digest)
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				if k := m.Annotations[fetcher.AnnotationCosignKind]; k == kind || strings.HasSuffix(fetcher.Name(m, nil), "."+suffix) {
					m.Annotations = nil
					out = append(out, signature{tagged, kind, m})
					found = true
				}
			}
			if found {
				break
			}
		}
		if found || src.Registry == nil {
			continue
		}
		_, d, err := r.Resolve(ctx, tagged)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d.Annotations = nil
		out = append(out, signature{tagged, kind, d})
	}
	return out, nil
}

// configOf is the config digest of manifest desc.
func configOf(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (digest.Digest, error) {
	b, err := content.ReadBlob(ctx, p, desc)
	if err != nil {
		return "", err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("not a manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return m.Config.Digest, nil
}

// cosignImageKind is the kind cosign save gives an image entry.
func cosignImageKind(d ocispec.Descriptor) string {
	if images.IsIndexType(d.MediaType) {
		return "dev.cosignproject.cosign/imageIndex"
	}
	return "dev.cosignproject.cosign/image"
}
