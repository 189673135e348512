package saver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sources serves every blob a save writes, searched in order: the seeds,
// the local containerd's content store, then the registry. It is the
// content.InfoReaderProvider containerd's exporter reads; every blob it
// serves is verified as it streams (the seeds verify, the exporter checks
// the digest of what it copies, the registry's blobs are checked here).
type sources struct {
	seeds fetcher.Seeds
	store content.Store // nil: no --from-containerd
	// remotes are the registry fetchers of the references saved (one per
	// repository); a blob no seed or store has is tried in each, in order.
	remotes []remotes.Fetcher
	// progress is told of each blob copied.
	progress Progress

	mu    sync.Mutex
	sizes map[digest.Digest]int64 // what Info reports, learnt from descriptors
	// asked are the manifests and indexes whose referrers were asked
	// for, listed those Referrers returned: each is walked once, so that
	// a cycle of referrers (A lists B, B lists A) ends where it closes
	// rather than at containerd's walk limit.
	asked, listed map[digest.Digest]bool
}

func (s *sources) learn(desc ocispec.Descriptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes[desc.Digest] = desc.Size
}

// Info is asked for the top-level manifests only (the exporter copies
// their distribution-source labels): any blob this save can serve has one.
func (s *sources) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	if n, ok := s.seeds.SizeOf(d); ok {
		return content.Info{Digest: d, Size: n}, nil
	}
	if s.store != nil {
		if info, err := s.store.Info(ctx, d); err == nil {
			return info, nil
		}
	}
	s.mu.Lock()
	n, ok := s.sizes[d]
	s.mu.Unlock()
	if ok && len(s.remotes) > 0 {
		return content.Info{Digest: d, Size: n}, nil
	}
	return content.Info{}, fmt.Errorf("blob %s: in no seed, not in containerd, no registry: %w", d, errdefs.ErrNotFound)
}

func (s *sources) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if s.seeds.Has(desc) {
		ra, err := s.seeds.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		return reported(s.progress, desc, FromSeed, ra), nil
	}
	if s.store != nil {
		if ra, err := s.store.ReaderAt(ctx, desc); err == nil {
			return reported(s.progress, desc, FromContainerd, ra), nil
		}
	}
	if len(s.remotes) == 0 {
		return nil, fmt.Errorf("blob %s: in no seed and not in containerd (offline): %w", desc.Digest, errdefs.ErrNotFound)
	}
	doc := images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType)
	if err := checkRemoteSize(desc, doc); err != nil {
		return nil, err
	}
	var last error
	for _, f := range s.remotes {
		rc, err := f.Fetch(ctx, desc)
		if err != nil {
			last = err
			continue
		}
		if doc {
			b, err := readDocument(rc, desc)
			if err != nil {
				return nil, err
			}
			return memReaderAt{bytes.NewReader(b)}, nil
		}
		return reported(s.progress, desc, FromRegistry, &remoteReaderAt{ctx: ctx, f: f, desc: desc, rc: rc}), nil
	}
	return nil, last
}

// checkRemoteSize refuses a registry blob whose descriptor's size cannot
// be read: negative, or, for a document (an index or manifest, which
// containerd's walkers read whole into memory), over the cap seeds'
// documents have. The size comes from a parent document or a referrers
// list the registry served: it must not choose what is allocated.
func checkRemoteSize(desc ocispec.Descriptor, doc bool) error {
	if desc.Size < 0 {
		return fmt.Errorf("registry %s %s: invalid size %d: %w", kindOf(desc), desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	if doc && desc.Size > fetcher.MaxJSONSize {
		return fmt.Errorf("registry %s %s: %d bytes exceeds the %d byte cap for documents: %w", kindOf(desc), desc.Digest, desc.Size, fetcher.MaxJSONSize, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readDocument reads a registry document to its declared size and checks
// its digest there, before anything parses or walks it: a registry that
// serves other bytes of the right length and never ends the body is
// refused at the size, not at an EOF that never comes.
func readDocument(rc io.ReadCloser, desc ocispec.Descriptor) ([]byte, error) {
	defer rc.Close()
	b := make([]byte, desc.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("registry %s %s: size mismatch: expected %d bytes, got fewer: %w", kindOf(desc), desc.Digest, desc.Size, errdefs.ErrDataLoss)
		}
		return nil, err
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("registry %s %q: %v: %w", kindOf(desc), desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("registry %s %s: digest mismatch: expected %s, got %s: %w", kindOf(desc), desc.Digest, desc.Digest, got, errdefs.ErrDataLoss)
	}
	return b, nil
}

// kindOf names desc in errors: index, manifest or blob.
func kindOf(desc ocispec.Descriptor) string {
	switch {
	case images.IsIndexType(desc.MediaType):
		return "index"
	case images.IsManifestType(desc.MediaType):
		return "manifest"
	}
	return "blob"
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

// remoteReaderAt reads a registry blob as the exporter reads blobs: from
// offset 0 up, in order. A read elsewhere starts the fetch again (it does
// not happen for whole-blob copies).
type remoteReaderAt struct {
	ctx  context.Context
	f    remotes.Fetcher
	desc ocispec.Descriptor
	rc   io.ReadCloser
	off  int64
}

func (r *remoteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if r.rc == nil || off != r.off {
		if r.rc != nil {
			r.rc.Close()
		}
		rc, err := r.f.Fetch(r.ctx, r.desc)
		if err != nil {
			return 0, err
		}
		r.rc, r.off = rc, 0
		if _, err := io.CopyN(io.Discard, rc, off); err != nil {
			return 0, err
		}
		r.off = off
	}
	n, err := io.ReadFull(r.rc, p)
	r.off += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (r *remoteReaderAt) Size() int64 { return r.desc.Size }

func (r *remoteReaderAt) Close() error {
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}

// Referrers makes sources a content.ReferrersProvider for the exporter:
// the OCI 1.1 referrers of desc (signatures as bundles, SBOMs,
// attestations: manifests whose subject is desc) that a seed lists, else
// that the registry's referrers API (or its tag fallback) lists.
func (s *sources) Referrers(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	s.mu.Lock()
	seen := s.asked[desc.Digest]
	s.asked[desc.Digest] = true
	s.mu.Unlock()
	if seen {
		return nil, nil // its referrers are walked already
	}
	for _, seed := range s.seeds {
		refs, err := seed.Referrers(ctx, desc.Digest)
		if err != nil {
			return nil, err
		}
		if len(refs) > 0 {
			return s.unwalked(refs), nil
		}
	}
	for _, f := range s.remotes {
		rf, ok := f.(remotes.ReferrersFetcher)
		if !ok {
			continue
		}
		refs, err := rf.FetchReferrers(ctx, desc.Digest)
		if err != nil || len(refs) == 0 {
			continue // a registry without the API and no fallback tag: none
		}
		for _, r := range refs {
			s.learn(r)
		}
		return s.unwalked(refs), nil
	}
	return nil, nil
}

// unwalked is refs less those walked already: listed before (here or as
// the referrer of another), or a subject whose referrers were asked for
// (an image, or a referrer up the cycle).
func (s *sources) unwalked(refs []ocispec.Descriptor) []ocispec.Descriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ocispec.Descriptor
	for _, r := range refs {
		if !s.asked[r.Digest] && !s.listed[r.Digest] {
			s.listed[r.Digest] = true
			out = append(out, r)
		}
	}
	return out
}
