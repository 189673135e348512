package importer

import (
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Source says where a blob's bytes came from.
type Source string

const (
	FromSeed     Source = "seed"
	FromRegistry Source = "registry"
)

// Observer is told what an import does; implementations must be safe for
// concurrent use (blobs are fetched in parallel).
type Observer interface {
	// BlobStarted: a blob is being written to the content store.
	BlobStarted(image string, d digest.Digest, size int64, src Source)
	// BlobProgress: n more bytes of d were read.
	BlobProgress(d digest.Digest, n int64)
	// BlobDone: d is in the content store (err nil) or failed.
	BlobDone(d digest.Digest, err error)
	// ImageDone: one image finished, with its summary.
	ImageDone(r ImageResult)
}

// ImageResult summarises one image of an import or pull.
type ImageResult struct {
	Seed         string // the seed it came from ("" for a registry-only pull)
	Names        []string
	Target       digest.Digest
	MediaType    string
	FromSeed     int64 // bytes written from seeds
	FromRegistry int64 // bytes written from the registry
	FromStore    int   // blobs a seed holds that the store had already: not read
	Duration     time.Duration
	Err          error
	// Skipped says why an entry was left out on purpose (an entry for
	// another platform than the ones imported); nothing was written.
	Skipped string
	// Warning is said of an image that landed anyway (unsigned, let in
	// by --verify=if-signed).
	Warning string
	// Signatures are the signature manifests kept with the image.
	Signatures int
}

type nopObserver struct{}

func (nopObserver) BlobStarted(string, digest.Digest, int64, Source) {}
func (nopObserver) BlobProgress(digest.Digest, int64)                {}
func (nopObserver) BlobDone(digest.Digest, error)                    {}
func (nopObserver) ImageDone(ImageResult)                            {}
