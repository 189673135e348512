package fetcher

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations of a delta seed's top-level entries (ctr-seed save --have):
// the inventories it was made against, and the layers it leaves out.
const (
	AnnotationDeltaBase    = "io.ctr-seed.delta.base"
	AnnotationDeltaOmitted = "io.ctr-seed.delta.omitted"
)

// The annotation `cosign save` puts on each entry of its layout (it names
// none), and the kinds of entry that are no image of their own: the
// signatures and the attestations of the image beside them.
const (
	AnnotationCosignKind = "kind"
	CosignSigs           = "dev.cosignproject.cosign/sigs"
	CosignAtts           = "dev.cosignproject.cosign/atts"
	// CosignSboms marks an SBOM attached by cosign (the .sbom tag), as
	// ctr-seed save marks it: cosign's layout has no kind of its own for
	// it.
	CosignSboms = "dev.cosignproject.cosign/sboms"
)

// IsCosignArtifact reports whether an index entry is signatures,
// attestations, SBOMs or referrers of an image beside it, not an image:
// as cosign save's layout and hauler's store mark them.
func IsCosignArtifact(d ocispec.Descriptor) bool {
	switch k := d.Annotations[AnnotationCosignKind]; k {
	case CosignSigs, CosignAtts, CosignSboms, "dev.hauler/sigs", "dev.hauler/atts", "dev.hauler/sboms":
		return true
	default:
		return strings.HasPrefix(k, "dev.hauler/referrers")
	}
}

// Image is one top-level entry of a seed's index.
type Image struct {
	Seed     *Seed
	Name     string // see Name; "" for an unnamed entry
	Target   ocispec.Descriptor
	RepoTags []string // docker manifest.json names pointing here
	// Err is set for an entry whose names are not references (control
	// characters, a newline, spaces): such a name would forge lines on a
	// terminal and become an image record. Its name annotations are
	// dropped from Target.
	Err error
}

// Images lists the seed's top-level index entries in index order. The
// index is read and parsed once per seed: an import asks for each image's
// signatures, attachments and referrers, each a walk of the entries.
func (s *Seed) Images(ctx context.Context) ([]Image, error) {
	imgs, _, err := s.entries(ctx)
	return slices.Clone(imgs), err
}

func (s *Seed) readImages(ctx context.Context) ([]Image, error) {
	b, err := s.ReadBlob(ctx, s.index)
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, s.errorf("index: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	out := make([]Image, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if n := d.Annotations[annotationBaseName]; s.zarf && n != "" && d.Annotations[images.AnnotationImageName] == "" {
			// zarf's layout names its entries so.
			d.Annotations = maps.Clone(d.Annotations)
			d.Annotations[images.AnnotationImageName] = n
		}
		img := Image{Seed: s, Target: d}
		if len(s.repoTags) > 0 && images.IsManifestType(d.MediaType) {
			cfg, err := s.configOf(ctx, d)
			if err != nil {
				return nil, err
			}
			for _, rt := range s.repoTags {
				if rt.config == cfg {
					img.RepoTags = append(img.RepoTags, rt.name)
				}
			}
		}
		if err := checkNames(d, img.RepoTags); err != nil {
			img.Err = s.errorf("index entry %s: %w", d.Digest, err)
			img.Target.Annotations = nil
			img.RepoTags = nil
		}
		img.Name = Name(img.Target, img.RepoTags)
		if unnamedEntry(img.Target) && len(img.RepoTags) > 0 {
			// A layout whose index names nothing beside a docker
			// manifest.json (docker save of an image by ID, since Docker
			// 25): its RepoTags name the image, one entry each, as the
			// legacy format's names do.
			for _, rt := range img.RepoTags {
				full, err := NormalizeRef(rt)
				if err != nil {
					continue
				}
				named := img
				named.Target.Annotations = maps.Clone(img.Target.Annotations)
				if named.Target.Annotations == nil {
					named.Target.Annotations = map[string]string{}
				}
				named.Target.Annotations[images.AnnotationImageName] = full
				named.Name = full
				out = append(out, named)
			}
			continue
		}
		out = append(out, img)
	}
	return out, nil
}

// unnamedEntry: an index entry with no name annotation.
func unnamedEntry(d ocispec.Descriptor) bool {
	return d.Annotations[images.AnnotationImageName] == "" && d.Annotations[ocispec.AnnotationRefName] == ""
}

func (s *Seed) configOf(ctx context.Context, desc ocispec.Descriptor) (digest.Digest, error) {
	b, err := s.ReadBlob(ctx, desc)
	if err != nil {
		return "", err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return "", s.blobErr(desc.Digest, "not a manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return m.Config.Digest, nil
}

// Platforms lists every platform an image has; nested indexes are followed
// and manifests without a platform are read from their config.
func Platforms(ctx context.Context, p Provider, desc ocispec.Descriptor) ([]ocispec.Platform, error) {
	ps, err := images.Platforms(ctx, p, desc)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := ps[:0]
	for _, pl := range ps {
		k := platforms.FormatAll(pl)
		if !seen[k] {
			seen[k] = true
			out = append(out, pl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return platforms.FormatAll(out[i]) < platforms.FormatAll(out[j]) })
	return out, nil
}

// FormatPlatforms renders platforms like "linux/amd64,linux/arm64/v8",
// each escaped (a seed says them).
func FormatPlatforms(ps []ocispec.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = Escape(platforms.FormatAll(p))
	}
	return strings.Join(s, ",")
}

// Size is the total size of the distinct blobs an image references, on
// every platform.
func Size(ctx context.Context, p Provider, desc ocispec.Descriptor) (int64, error) {
	var (
		mu    sync.Mutex
		seen  = map[digest.Digest]bool{}
		total int64
	)
	err := images.Walk(ctx, images.Handlers(images.HandlerFunc(func(ctx context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		mu.Lock()
		defer mu.Unlock()
		if seen[d.Digest] {
			return nil, images.ErrSkipDesc
		}
		seen[d.Digest] = true
		total += d.Size
		return nil, nil
	}), images.ChildrenHandler(p)), desc)
	if err != nil {
		return 0, fmt.Errorf("walking %s: %w", desc.Digest, err)
	}
	return total, nil
}

// checkNames refuses an entry whose names could not be image names: a
// newline, another control character (a terminal escape), a space, or
// bytes that are not UTF-8. Printed by ls and import, such a name could
// forge lines on the operator's terminal; recorded, it would be an image
// nothing can pull. Names that are merely unusual (upper case) are left to
// containerd, which accepts them as ctr does.
func checkNames(d ocispec.Descriptor, repoTags []string) error {
	names := append([]string{d.Annotations[images.AnnotationImageName], d.Annotations[ocispec.AnnotationRefName]}, repoTags...)
	for _, n := range names {
		if !printable(n) {
			return fmt.Errorf("image name %s is not a reference (control characters, spaces or bytes that are not UTF-8): %w", Escape(n), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Escape is a string a seed (or a registry) says, as it may be printed:
// itself when it is printable (UTF-8 without spaces, as every
// name, media type, platform and digest is), else quoted as Go quotes it
// (%q: \n, \x1b, \a), so that a newline or a terminal escape in it
// forges no line and moves no cursor. Every seed string printed goes
// through it, names included (checkNames).
func Escape(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// printable: UTF-8, every rune printable, no spaces.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) < 0
}

// omitted reports whether a delta seed among ss leaves d out on purpose,
// and the inventories it was made against.
func (ss Seeds) omitted(ctx context.Context, d digest.Digest) (string, bool) {
	for _, s := range ss {
		if base, ok := s.Omits(ctx, d); ok {
			return base, true
		}
	}
	return "", false
}

// Omits reports whether the seed is a delta that leaves d out (the node
// it was made for holds d), and the inventories it was made against.
func (s *Seed) Omits(ctx context.Context, d digest.Digest) (string, bool) {
	base, ok := s.delta(ctx).omitted[d]
	return base, ok
}

// Omitted lists the blobs a delta seed leaves out (none for a full seed),
// sorted.
func (s *Seed) Omitted(ctx context.Context) []digest.Digest {
	return s.delta(ctx).sorted
}

// Delta reports whether the seed is a delta seed, and how many blobs it
// expects the node to hold.
func (s *Seed) Delta(ctx context.Context) (omitted int, ok bool) {
	n := len(s.delta(ctx).sorted)
	return n, n > 0
}

// deltaInfo is what a delta seed's entries say it leaves out, read from
// its index once.
type deltaInfo struct {
	omitted map[digest.Digest]string // digest → the inventories
	sorted  []digest.Digest
}

func (s *Seed) delta(ctx context.Context) *deltaInfo {
	s.deltaOnce.Do(func() {
		s.deltaInfo = &deltaInfo{omitted: map[digest.Digest]string{}}
		imgs, err := s.Images(ctx)
		if err != nil {
			return
		}
		for _, img := range imgs {
			v := img.Target.Annotations[AnnotationDeltaOmitted]
			if v == "" {
				continue
			}
			for _, o := range strings.Split(v, ",") {
				d := digest.Digest(o)
				if d.Validate() != nil {
					continue // no blob: nothing to expect, nothing to print
				}
				if _, seen := s.deltaInfo.omitted[d]; !seen {
					s.deltaInfo.omitted[d] = img.Target.Annotations[AnnotationDeltaBase]
					s.deltaInfo.sorted = append(s.deltaInfo.sorted, d)
				}
			}
		}
		sort.Slice(s.deltaInfo.sorted, func(i, j int) bool { return s.deltaInfo.sorted[i] < s.deltaInfo.sorted[j] })
	})
	return s.deltaInfo
}
