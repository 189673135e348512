package importer

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/ctr-seed/ctr-seed/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// countingFetcher tells the observer about each blob it serves and counts
// bytes by source. It is only asked for blobs the store lacks: containerd's
// FetchHandler checks the store first.
type countingFetcher struct {
	inner    remotes.Fetcher
	seeds    fetcher.Seeds
	image    string
	obs      Observer
	seed     *atomic.Int64
	registry *atomic.Int64
	// verified records the seed blobs read to their end (so verified)
	// in this run: the applier may read those again without hashing.
	verified *sync.Map
}

func (f *countingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	src, n := FromRegistry, f.registry
	if f.seeds.Has(desc) {
		src, n = FromSeed, f.seed
	}
	f.obs.BlobStarted(f.image, desc.Digest, desc.Size, src)
	rc, err := f.inner.Fetch(ctx, desc)
	if err != nil {
		f.obs.BlobDone(desc.Digest, err)
		return nil, err
	}
	r := &observedReader{rc: rc, desc: desc, obs: f.obs, n: n}
	if src == FromSeed {
		r.verified = f.verified
	}
	return r, nil
}

type observedReader struct {
	rc   io.ReadCloser
	desc ocispec.Descriptor
	obs  Observer
	n    *atomic.Int64
	done bool

	verified *sync.Map // nil: not a seed blob
}

func (r *observedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.n.Add(int64(n))
		r.obs.BlobProgress(r.desc.Digest, int64(n))
	}
	if err != nil && !r.done {
		r.done = true
		if err == io.EOF {
			if r.verified != nil {
				r.verified.Store(r.desc.Digest, true)
			}
			r.obs.BlobDone(r.desc.Digest, nil)
		} else {
			r.obs.BlobDone(r.desc.Digest, err)
		}
	}
	return n, err
}

// Close before the end means the write was abandoned (cancelled, daemon
// gone, disk full): the blob is reported failed, never written.
func (r *observedReader) Close() error {
	if !r.done {
		r.done = true
		r.obs.BlobDone(r.desc.Digest, fmt.Errorf("blob %s: closed before the end of its content", r.desc.Digest))
	}
	return r.rc.Close()
}
