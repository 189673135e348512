package fetcher

import (
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// query is a reference as containerd normalises it.
type query struct {
	ref  string        // normalised: docker.io/library/alpine:latest
	repo string        // docker.io/library/alpine
	tag  string        // latest ("" when pinned by digest only)
	pin  digest.Digest // from name@sha256:...
}

// NormalizeRef is ref as containerd names it: alpine is
// docker.io/library/alpine:latest.
func NormalizeRef(ref string) (string, error) {
	q, err := parseQuery(ref)
	return q.ref, err
}

func parseQuery(ref string) (query, error) {
	named, err := distref.ParseDockerRef(ref)
	if err != nil {
		return query{}, fmt.Errorf("reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	q := query{ref: named.String(), repo: named.Name()}
	if t, ok := named.(distref.Tagged); ok {
		q.tag = t.Tag()
	}
	if c, ok := named.(distref.Canonical); ok {
		q.pin = c.Digest()
	}
	return q, nil
}

// matchesFull reports whether a full reference name (an annotation value)
// names what q asks for pointing at desc.
func (q query) matchesFull(name string, desc ocispec.Descriptor) bool {
	named, err := distref.ParseDockerRef(name)
	if err != nil {
		return false
	}
	if q.pin != "" {
		if named.Name() != q.repo || desc.Digest != q.pin {
			return false
		}
		c, ok := named.(distref.Canonical)
		return !ok || c.Digest() == q.pin
	}
	return named.String() == q.ref
}

// isTagOnly reports whether an org.opencontainers.image.ref.name value is a
// tag alone (as `ctr images export` and skopeo write) rather than a reference.
func isTagOnly(refName string) bool {
	return refName != "" && !strings.ContainsAny(refName, "/:@")
}

// match levels, in the order containerd users expect names to win.
const (
	byImageName = iota // io.containerd.image.name
	byRefName          // org.opencontainers.image.ref.name, a full reference
	byTag              // org.opencontainers.image.ref.name, a tag alone
	byRepoTag          // docker manifest.json RepoTags
	levels
)

// candidate is a top-level index entry of a seed, with its names.
type candidate struct {
	seed    *Seed
	desc    ocispec.Descriptor
	repoTag []string // names from manifest.json that point here
}

// pick chooses the entry q names among cands (all seeds, in order). At each
// level the first seed that matches wins; a tag alone must be unambiguous.
func pick(q query, cands []candidate) (candidate, error) {
	for level := range levels {
		var hits []candidate
		for _, c := range cands {
			if c.matches(q, level) {
				hits = append(hits, c)
			}
		}
		if len(hits) == 0 {
			continue
		}
		if level == byTag && q.pin == "" {
			for _, h := range hits[1:] {
				if h.desc.Digest != hits[0].desc.Digest {
					return candidate{}, fmt.Errorf("tag %q alone names %d different images in the seeds; ask for a full reference: %w", q.tag, len(hits), errdefs.ErrFailedPrecondition)
				}
			}
		}
		return hits[0], nil
	}
	return candidate{}, fmt.Errorf("%s: not in any seed: %w", q.ref, errdefs.ErrNotFound)
}

func (c candidate) matches(q query, level int) bool {
	a := c.desc.Annotations
	switch level {
	case byImageName:
		n := a[images.AnnotationImageName]
		return n != "" && q.matchesFull(n, c.desc)
	case byRefName:
		n := a[ocispec.AnnotationRefName]
		return n != "" && !isTagOnly(n) && q.matchesFull(n, c.desc)
	case byTag:
		// Only for entries named by nothing but a tag: an entry with a
		// full name (ctr export writes both) is matched by that name, so
		// another registry's image with the same tag is not mistaken for it.
		n := a[ocispec.AnnotationRefName]
		if !isTagOnly(n) || a[images.AnnotationImageName] != "" || len(c.repoTag) > 0 {
			return false
		}
		if q.pin != "" {
			return c.desc.Digest == q.pin
		}
		return n == q.tag
	case byRepoTag:
		for _, t := range c.repoTag {
			if q.matchesFull(t, c.desc) {
				return true
			}
		}
	}
	return false
}

// Name is how an index entry is called: the containerd image name, else
// the OCI ref name (a reference or a tag alone), else a docker RepoTag.
func Name(desc ocispec.Descriptor, repoTags []string) string {
	if n := desc.Annotations[images.AnnotationImageName]; n != "" {
		return n
	}
	if n := desc.Annotations[ocispec.AnnotationRefName]; n != "" {
		return n
	}
	if len(repoTags) > 0 {
		if named, err := distref.ParseDockerRef(repoTags[0]); err == nil {
			return named.String()
		}
	}
	return ""
}
