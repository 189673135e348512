package pusher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/blobprogress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sourced is the seeds as containerd's push reads them: the image's
// documents from the bytes checked before the push began, every other
// blob read sequentially and verified as it streams (the seeds' verifying
// reader fails when the blob's size is reached, before the upload is
// committed), and, as Info, where in the target registry this run already
// put a blob, so the docker pusher mounts it instead of sending it again.
type sourced struct {
	seeds fetcher.Seeds
	docs  documents
	run   *run
	host  string
}

const labelSourcePrefix = "containerd.io/distribution.source."

func (s *sourced) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	n, ok := s.seeds.SizeOf(d)
	if !ok {
		return content.Info{}, errdefs.ErrNotFound
	}
	info := content.Info{Digest: d, Size: n}
	s.run.mu.Lock()
	if repo, ok := s.run.pushedTo[d]; ok {
		info.Labels = map[string]string{labelSourcePrefix + s.host: repo}
	}
	s.run.mu.Unlock()
	return info, nil
}

func (s *sourced) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	// Only a blob the registry lacks is read: one a delta seed left out
	// is then missing on both sides.
	for _, seed := range s.seeds {
		if base, ok := seed.Omits(ctx, desc.Digest); ok {
			if _, held := seed.Has(desc.Digest); !held {
				return nil, fmt.Errorf("blob %s: left out of this delta seed, made for inventory %s; not in the registry either (push the base first): %w",
					desc.Digest, base, errdefs.ErrNotFound)
			}
		}
	}
	if b, ok := s.docs[desc.Digest]; ok && int64(len(b)) == desc.Size {
		return docReaderAt{bytes.NewReader(b)}, nil
	}
	if isDocument(desc.MediaType) && s.seeds.Has(desc) {
		return nil, fmt.Errorf("%s %s: not checked before the push: %w", kindOf(desc.MediaType), desc.Digest, errdefs.ErrFailedPrecondition)
	}
	rc, err := s.seeds.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &streamReaderAt{rc: rc, size: desc.Size}, nil
}

type docReaderAt struct{ *bytes.Reader }

func (docReaderAt) Close() error { return nil }

// streamReaderAt serves a sequential stream as the push reads it: from
// offset 0 up, in order.
type streamReaderAt struct {
	rc   io.ReadCloser
	off  int64
	size int64
}

func (r *streamReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off != r.off {
		return 0, io.ErrUnexpectedEOF // the push reads in order: never happens
	}
	n, err := io.ReadFull(r.rc, p)
	r.off += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (r *streamReaderAt) Size() int64  { return r.size }
func (r *streamReaderAt) Close() error { return r.rc.Close() }

// counting is the registry's pusher, counting what it sends and what the
// registry had, and noting where each blob now is. It PUTs no manifest
// whose bytes were not checked before the push, and the manifests of an
// index (root) by digest, not by the index's tag: a push that fails
// later leaves no other manifest under the image's name.
type counting struct {
	remotes.Pusher
	byDigest remotes.Pusher // the same repository, manifests by digest
	root     digest.Digest
	docs     documents
	run      *run
	repo     string
	progress blobprogress.Observer

	mu                          sync.Mutex
	uploaded, existing, mounted int
	bytes                       int64
}

func (c *counting) Push(ctx context.Context, d ocispec.Descriptor) (content.Writer, error) {
	pusher := c.Pusher
	if manifestish(d.MediaType) {
		if _, ok := c.docs[d.Digest]; !ok {
			return nil, fmt.Errorf("%s %s: not checked before the push: %w", kindOf(d.MediaType), d.Digest, errdefs.ErrFailedPrecondition)
		}
		if d.Digest != c.root {
			pusher = c.byDigest
		}
	}
	w, err := pusher.Push(inRepository(ctx, c.repo, d), d)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errdefs.IsAlreadyExists(err):
		if manifestish(d.MediaType) {
			break
		}
		if mountedFrom(d, c.repo) {
			c.mounted++
		} else {
			c.existing++
		}
		c.note(d.Digest)
	case err == nil:
		blob := !manifestish(d.MediaType)
		if blob {
			c.progress.BlobStarted(d.Digest, d.Size, "seed")
		}
		return &countingWriter{Writer: w, c: c, d: d.Digest, blob: blob}, nil
	}
	return w, err
}

// inRepository keys d's push status in containerd's tracker (one per
// resolver, keyed by digest alone) by repository too: what this run
// pushed into one repository is not in another. A blob there is mounted
// (Info's source label); a manifest is PUT again.
func inRepository(ctx context.Context, repo string, d ocispec.Descriptor) context.Context {
	kind, _, _ := strings.Cut(remotes.MakeRefKey(ctx, d), "-")
	return remotes.WithMediaTypeKeyPrefix(ctx, d.MediaType, repo+"/"+kind)
}

func (c *counting) note(d digest.Digest) {
	c.run.mu.Lock()
	c.run.pushedTo[d] = c.repo
	c.run.mu.Unlock()
}

// mountedFrom: the descriptor came with a mount candidate in another
// repository (this run pushed the blob there), so the registry mounted it.
func mountedFrom(d ocispec.Descriptor, repo string) bool {
	for k, v := range d.Annotations {
		if strings.HasPrefix(k, labelSourcePrefix) && v != repo {
			return true
		}
	}
	return false
}

type countingWriter struct {
	content.Writer
	c    *counting
	d    digest.Digest
	blob bool
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.c.mu.Lock()
	w.c.bytes += int64(n)
	w.c.mu.Unlock()
	if w.blob && n > 0 {
		w.c.progress.BlobProgress(w.d, int64(n))
	}
	return n, err
}

func (w *countingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	if w.blob {
		if err == nil {
			w.c.mu.Lock()
			w.c.uploaded++ // what was written, as its "wrote" line says
			w.c.mu.Unlock()
			w.c.note(w.d)
		}
		w.c.progress.BlobDone(w.d, err)
	}
	return err
}
