package fetcher

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Provider is what containerd's image helpers read from.
type Provider = content.Provider

// Seeds serves blobs by digest from any of several seeds, in order.
type Seeds []*Seed

func (ss Seeds) find(desc ocispec.Descriptor) *Seed {
	for _, s := range ss {
		if size, ok := s.Has(desc.Digest); ok && size == desc.Size {
			return s
		}
	}
	return nil
}

// Has reports whether some seed holds desc.
func (ss Seeds) Has(desc ocispec.Descriptor) bool { return ss.find(desc) != nil }

// Fetch streams desc, verified, from the first seed that holds it.
func (ss Seeds) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if s := ss.find(desc); s != nil {
		return s.Fetch(ctx, desc)
	}
	return nil, fmt.Errorf("blob %s: not in any seed: %w", desc.Digest, errdefs.ErrNotFound)
}

// ReaderAt implements content.Provider over all seeds.
func (ss Seeds) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if s := ss.find(desc); s != nil {
		return s.ReaderAt(ctx, desc)
	}
	return nil, fmt.Errorf("blob %s: not in any seed: %w", desc.Digest, errdefs.ErrNotFound)
}

// Close closes every seed.
func (ss Seeds) Close() error {
	var first error
	for _, s := range ss {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// candidates lists the top-level entries of every seed.
func (ss Seeds) candidates(ctx context.Context) ([]candidate, error) {
	var out []candidate
	for _, s := range ss {
		imgs, err := s.Images(ctx)
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			out = append(out, candidate{seed: s, desc: img.Target, repoTag: img.RepoTags})
		}
	}
	return out, nil
}

// Resolve finds the entry ref names in the seeds. The returned name is the
// normalised reference.
func (ss Seeds) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	q, err := parseQuery(ref)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	cands, err := ss.candidates(ctx)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	c, err := pick(q, cands)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	desc := c.desc
	desc.Annotations = nil
	return q.ref, desc, nil
}
