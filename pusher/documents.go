package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxImageDocuments caps the bytes of all documents of one image held in
// memory while it is pushed (each is capped at fetcher.MaxJSONSize).
const maxImageDocuments = 4 * fetcher.MaxJSONSize

// documents are the verified bytes of an image's index, manifests and
// configs, by digest. containerd's push reads a manifest twice (for its
// children, then to PUT it) and with exactly its size, so a reader that
// checks at EOF never would: every document is read whole, capped and
// checked here, before anything is sent, and the push is served these
// bytes and no others.
type documents map[digest.Digest][]byte

// isDocument: what is read whole and checked before the push starts.
// Other configs (an artifact's) stream and are verified as blobs are.
func isDocument(mt string) bool { return manifestish(mt) || images.IsKnownConfig(mt) }

// readDocuments reads and checks root and every document under it the
// seeds hold (an index's other platforms, left out, are not walked).
func readDocuments(ctx context.Context, seeds fetcher.Seeds, root ocispec.Descriptor) (documents, error) {
	docs := documents{}
	var total int64
	var walk func(d ocispec.Descriptor) error
	walk = func(d ocispec.Descriptor) error {
		if _, ok := docs[d.Digest]; ok || !isDocument(d.MediaType) {
			return nil
		}
		b, err := readDocument(ctx, seeds, d)
		if err != nil {
			return err
		}
		if total += int64(len(b)); total > maxImageDocuments {
			return fmt.Errorf("%s %s: the image's documents exceed %d bytes in all: %w", kindOf(d.MediaType), d.Digest, maxImageDocuments, errdefs.ErrInvalidArgument)
		}
		docs[d.Digest] = b
		switch {
		case images.IsIndexType(d.MediaType):
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return fmt.Errorf("index %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
			}
			for _, c := range idx.Manifests {
				if seeds.Has(c) {
					if err := walk(c); err != nil {
						return err
					}
				}
			}
		case images.IsManifestType(d.MediaType):
			var m ocispec.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("manifest %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
			}
			if seeds.Has(m.Config) { // else the registry's copy, if any, stays
				return walk(m.Config)
			}
		}
		return nil
	}
	return docs, walk(root)
}

// readDocument reads d whole from the seeds, capped, and checks its size
// and digest here, whatever the seed's reader does.
func readDocument(ctx context.Context, seeds fetcher.Seeds, d ocispec.Descriptor) ([]byte, error) {
	what := kindOf(d.MediaType) + " " + d.Digest.String()
	if d.Size < 0 || d.Size > fetcher.MaxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d byte cap for documents: %w", what, d.Size, fetcher.MaxJSONSize, errdefs.ErrInvalidArgument)
	}
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", what, err, errdefs.ErrInvalidArgument)
	}
	rc, err := seeds.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%s: size mismatch: expected %d bytes, got %d: %w", what, d.Size, len(b), errdefs.ErrDataLoss)
	}
	if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("%s: digest mismatch: expected %s, got %s: %w", what, d.Digest, got, errdefs.ErrDataLoss)
	}
	return b, nil
}

// kindOf names a document's kind in error lines.
func kindOf(mt string) string {
	switch {
	case images.IsIndexType(mt):
		return "index"
	case images.IsManifestType(mt):
		return "manifest"
	case images.IsKnownConfig(mt):
		return "config"
	}
	return "blob"
}
