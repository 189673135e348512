package fetcher

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Provider is what containerd's image helpers read from.
type Provider = content.Provider

// Seeds serves blobs by digest from any of several seeds, in order.
type Seeds []*Seed

// find returns the first seed holding desc. A seed that holds it unusably
// (wrong size, a link out of the archive, not a regular file) makes an
// error naming that seed: such a copy is not silently skipped, nor replaced
// by the registry's.
func (ss Seeds) find(desc ocispec.Descriptor) (*Seed, error) {
	var bad error
	for _, s := range ss {
		f, err := s.blob(desc.Digest)
		switch {
		case err == nil && f.size == desc.Size:
			return s, nil
		case err == nil:
			err = s.blobErr(desc.Digest, "size mismatch: expected %d bytes, seed has %d: %w", desc.Size, f.size, errdefs.ErrDataLoss)
		case errdefs.IsNotFound(err):
			continue
		default:
			err = s.blobErr(desc.Digest, "%w", err)
		}
		if bad == nil {
			bad = err
		}
	}
	if bad != nil {
		return nil, bad
	}
	return nil, fmt.Errorf("blob %s: not in any seed: %w", desc.Digest, errdefs.ErrNotFound)
}

// Check fails when any seed holds desc unusably: an entry that is not a
// regular file (or a link resolved inside its archive), or whose size is
// not the descriptor's. It reads no bytes, only the index, so it is what
// an import asks of every blob, even one the content store already has:
// a hostile seed is refused whatever the store holds. held says whether a
// seed holds desc (usably).
func (ss Seeds) Check(desc ocispec.Descriptor) (held bool, err error) {
	for _, s := range ss {
		f, err := s.blob(desc.Digest)
		switch {
		case errdefs.IsNotFound(err):
		case err != nil:
			return false, s.blobErr(desc.Digest, "%w", err)
		case f.size != desc.Size:
			return false, s.blobErr(desc.Digest, "size mismatch: expected %d bytes, seed has %d: %w", desc.Size, f.size, errdefs.ErrDataLoss)
		default:
			held = true
		}
	}
	return held, nil
}

// Refetch streams desc's bytes as the first seed holding it has them,
// size-checked but not hashed: only for a caller that read this very copy
// through Fetch to its end already (so verified it), and reads it again.
func (ss Seeds) Refetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := ss.find(desc)
	if err != nil {
		return nil, err
	}
	return s.fetchRaw(desc)
}

// SizeOf is the size of the blob d in the first seed holding it.
func (ss Seeds) SizeOf(d digest.Digest) (int64, bool) {
	for _, s := range ss {
		if n, ok := s.Has(d); ok {
			return n, true
		}
	}
	return 0, false
}

// Has reports whether some seed holds desc usably.
func (ss Seeds) Has(desc ocispec.Descriptor) bool {
	s, _ := ss.find(desc)
	return s != nil
}

// Fetch streams desc, verified, from the first seed that holds it.
func (ss Seeds) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := ss.find(desc)
	if err != nil {
		return nil, err
	}
	return s.Fetch(ctx, desc)
}

// ReaderAt implements content.Provider over all seeds.
func (ss Seeds) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s, err := ss.find(desc)
	if err != nil {
		return nil, err
	}
	return s.ReaderAt(ctx, desc)
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
