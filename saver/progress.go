package saver

import (
	"fmt"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/blobprogress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Where a saved blob's bytes came from, as Progress is told.
const (
	FromSeed       = "seed"
	FromContainerd = "containerd"
	FromRegistry   = "registry"
)

// Progress is told which blobs a save copies into the seed. Indexes and
// manifests (kilobytes, also read while the exporter walks the images)
// are not reported.
type Progress = blobprogress.Observer

// reported wraps ra so that p sees the copy of desc; a manifest or index
// is returned as it is.
func reported(p Progress, desc ocispec.Descriptor, from string, ra content.ReaderAt) content.ReaderAt {
	if images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType) {
		return ra
	}
	p.BlobStarted(desc.Digest, desc.Size, from)
	return &progressReaderAt{ReaderAt: ra, p: p, desc: desc}
}

// progressReaderAt counts what the exporter reads (it reads a blob once,
// in order) and reports the end when the reader is closed.
type progressReaderAt struct {
	content.ReaderAt
	p    Progress
	desc ocispec.Descriptor
	read atomic.Int64
}

func (r *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(b, off)
	if n > 0 {
		r.read.Add(int64(n))
		r.p.BlobProgress(r.desc.Digest, int64(n))
	}
	return n, err
}

func (r *progressReaderAt) Close() error {
	err := r.ReaderAt.Close()
	if got := r.read.Load(); got < r.desc.Size {
		r.p.BlobDone(r.desc.Digest, fmt.Errorf("blob %s: copied %d of %d bytes: %w", r.desc.Digest, got, r.desc.Size, errdefs.ErrAborted))
	} else {
		r.p.BlobDone(r.desc.Digest, err)
	}
	return err
}

// progressOf is p, or one that ignores everything.
func progressOf(p Progress) Progress { return blobprogress.Or(p) }
