package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An OCI 1.1 referrer a seed carries (an entry marked with the subject
// annotation, naming nothing) is pushed by digest into the repository of
// each name of its subject, and listed in the subject's referrers
// fallback tag (sha256-<hex>), as the OCI distribution spec tells clients
// to where a registry has no referrers API (CNCF Distribution has none;
// where one has it, the tag is harmless).

// referrersOf maps each subject digest to the seed's referrers of it.
func referrersOf(imgs []fetcher.Image) map[digest.Digest][]ocispec.Descriptor {
	out := map[digest.Digest][]ocispec.Descriptor{}
	for _, img := range imgs {
		subj := img.Target.Annotations[images.AnnotationManifestSubject]
		if img.Err != nil || img.Name != "" || subj == "" {
			continue
		}
		d, err := digest.Parse(subj)
		if err != nil {
			continue
		}
		out[d] = append(out[d], img.Target)
	}
	return out
}

// pushReferrers pushes refs of the image name (subject) of seed s.
func (p *run) pushReferrers(ctx context.Context, s *fetcher.Seed, name string, subject digest.Digest, refs []ocispec.Descriptor) []ImageResult {
	var results []ImageResult
	repo, err := Target(name, p.opts)
	if err != nil {
		return nil
	}
	loc := locator(repo)
	srcLoc := locator(name)
	var listed []ocispec.Descriptor
	for _, r := range refs {
		res := p.pushImage(ctx, s, srcLoc+"@"+r.Digest.String(), r)
		results = append(results, res)
		if res.Err == nil {
			d := ocispec.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size, ArtifactType: r.ArtifactType}
			listed = append(listed, d)
		}
	}
	if len(listed) > 0 {
		tag := loc + ":" + subject.Algorithm().String() + "-" + subject.Encoded()
		if err := p.updateFallbackTag(ctx, tag, listed); err != nil {
			results = append(results, ImageResult{Seed: s.Path(), Name: name, Target: tag, Digest: subject,
				Err: fmt.Errorf("seed %s: image %s: referrers fallback tag %s: %w", s.Path(), name, tag, err)})
		}
	}
	return results
}

// updateFallbackTag adds refs to the index at tag (made if absent).
func (p *run) updateFallbackTag(ctx context.Context, tag string, refs []ocispec.Descriptor) error {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if _, d, err := p.resolver.Resolve(ctx, tag); err == nil {
		f, err := p.resolver.Fetcher(ctx, tag)
		if err != nil {
			return err
		}
		rc, err := f.Fetch(ctx, d)
		if err != nil {
			return err
		}
		if d.Size < 0 || d.Size > fetcher.MaxJSONSize {
			rc.Close()
			return fmt.Errorf("the registry's index at the tag, %s: %d bytes exceeds the %d byte cap for documents: %w", d.Digest, d.Size, fetcher.MaxJSONSize, errdefs.ErrInvalidArgument)
		}
		b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
		rc.Close()
		if err != nil {
			return err
		}
		if int64(len(b)) != d.Size || d.Digest.Validate() != nil || d.Digest.Algorithm().FromBytes(b) != d.Digest {
			return fmt.Errorf("the registry's index at the tag is not %s (%d bytes): %w", d.Digest, d.Size, errdefs.ErrDataLoss)
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("the registry's index at the tag: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	for _, r := range refs {
		if !slices.ContainsFunc(idx.Manifests, func(m ocispec.Descriptor) bool { return m.Digest == r.Digest }) {
			idx.Manifests = append(idx.Manifests, r)
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}
	pusher, err := p.resolver.Pusher(ctx, tag)
	if err != nil {
		return err
	}
	w, err := pusher.Push(inRepository(ctx, locator(tag), desc), desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Commit(ctx, desc.Size, desc.Digest)
}

// locator is ref without its tag or digest.
func locator(ref string) string {
	if i := lastIndexAny(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := lastIndexAny(ref, ":"); i > lastIndexAny(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func lastIndexAny(s, chars string) int {
	for i := len(s) - 1; i >= 0; i-- {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return i
			}
		}
	}
	return -1
}
