package contentstream

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// A blob of at least directMin bytes is written straight into the
// daemon's ingest file when this process can reach it (see fileWriter).
const directMin = 4 << 20

// writebackEvery is how many bytes a fileWriter writes before it asks the
// kernel to start writing them back: the daemon fsyncs the blob at its
// commit, and a blob whose pages are already on their way to the disk
// makes that wait short.
const writebackEvery = 8 << 20

// contentRoot is the daemon's content store directory as this process
// sees it ("" when it cannot: another node, another mount namespace, a
// content store that is not containerd's local one), asked once.
type contentRoot struct {
	once sync.Once
	api  introspectionapi.IntrospectionClient
	dir  string
}

func (r *contentRoot) get(ctx context.Context) string {
	r.once.Do(func() {
		resp, err := r.api.Plugins(ctx, &introspectionapi.PluginsRequest{Filters: []string{"type==io.containerd.content.v1,id==content"}})
		if err != nil || len(resp.Plugins) != 1 {
			log.G(ctx).WithError(err).Debug("content store root unknown: blobs stream over gRPC")
			return
		}
		dir := resp.Plugins[0].Exports["root"]
		// (Its ingest directory is made at the daemon's first write.)
		if st, err := os.Stat(dir); dir == "" || err != nil || !st.IsDir() {
			log.G(ctx).WithField("root", dir).Debug("content store not reachable from here: blobs stream over gRPC")
			return
		}
		r.dir = dir
	})
	return r.dir
}

// direct opens a fileWriter for the blob of wo, or returns nil when the
// blob must stream instead (the reason is logged).
//
// The daemon keeps an ingest's bytes in a file of its local content store
// and resumes an ingest by hashing that file: so the bytes can be put in
// the file by anyone who can reach it, and the daemon still checks every
// one of them (size and digest) at the commit, exactly as it checks a
// stream's. The daemon names the file after its internal key for the ref
// ("<namespace>/<sequence>/<ref>", the sequence 1 for a ref's first
// ingest in the namespace); the ref file in the ingest directory must say
// that key, or nothing is written there. The write session opened here
// stays open while the file is written: it holds the ref's lock, so any
// other writer of the blob (the plugin, another import, a pull) waits, as
// for a streamed write, and then finds the blob committed.
func (s *Store) direct(ctx context.Context, wo content.WriterOpts) (content.Writer, error) {
	root := s.root.get(ctx)
	ns, ok := namespaces.Namespace(ctx)
	if root == "" || !ok {
		return nil, nil
	}
	w, err := s.open(ctx, wo.Ref, wo.Desc)
	if err != nil {
		return nil, err
	}
	// Shared content (the blob is in another namespace): the daemon
	// needs no bytes, only the commit.
	if wo.Desc.Size > 0 && w.offset == wo.Desc.Size {
		return w, nil
	}
	key := ns + "/1/" + wo.Ref
	dir := filepath.Join(root, "ingest", digest.FromString(key).Encoded())
	if b, err := os.ReadFile(filepath.Join(dir, "ref")); err != nil || string(b) != key {
		log.G(ctx).WithField("ref", wo.Ref).WithError(err).Debug("ingest file not found: the blob streams over gRPC")
		return w, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() != w.offset {
			err = fmt.Errorf("ingest file holds %d bytes, the daemon %d", st.Size(), w.offset)
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		log.G(ctx).WithField("ref", wo.Ref).WithError(err).Debug("ingest file not writable: the blob streams over gRPC")
		return w, nil
	}
	return &fileWriter{s: s, f: f, held: w, ref: wo.Ref, desc: wo.Desc, offset: w.offset, synced: w.offset}, nil
}

// fileWriter writes a blob into the daemon's ingest file while its write
// session (held) keeps the ref's lock; its commit ends that session (the
// daemon syncs the file and lets go of it), resumes the ingest in a new
// one (the daemon hashes the file) and commits it there.
type fileWriter struct {
	s      *Store
	f      *os.File
	held   *writer
	ref    string
	desc   ocispec.Descriptor
	offset int64
	synced int64 // bytes before this are on their way to the disk
	err    error
	digest digest.Digest // the daemon's, once committed
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	// The session that holds the ref ended (the daemon went away, the
	// import was stopped): the write fails, as a stream's would.
	if err := w.held.failure(); err != nil {
		w.err = fmt.Errorf("writing %s: %w", w.ref, err)
		return 0, w.err
	}
	n, err := w.f.WriteAt(p, w.offset)
	w.offset += int64(n)
	if err != nil {
		w.err = fmt.Errorf("writing ingest %s: %w", w.ref, err)
		return n, w.err
	}
	if w.offset-w.synced >= writebackEvery {
		// Only a hint (asynchronous, no data integrity): the daemon's
		// fsync at the commit is what makes the blob durable.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.synced, w.offset-w.synced, unix.SYNC_FILE_RANGE_WRITE)
		w.synced = w.offset
	}
	return n, nil
}

func (w *fileWriter) Status() (content.Status, error) {
	return content.Status{Ref: w.ref, Offset: w.offset, Total: w.desc.Size, Expected: w.desc.Digest}, nil
}

// Digest is known to the daemon only, once it has hashed the file: ""
// until the commit.
func (w *fileWriter) Digest() digest.Digest { return w.digest }

func (w *fileWriter) Truncate(size int64) error {
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("truncating ingest %s: %w", w.ref, err)
	}
	w.offset, w.synced = size, min(w.synced, size)
	return nil
}

func (w *fileWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if err := w.Close(); err != nil {
		return err
	}
	sw, err := w.s.resume(ctx, w.ref, w.desc)
	if err != nil {
		return fmt.Errorf("resuming ingest %s: %w", w.ref, err)
	}
	if sw.offset != w.offset {
		sw.Close()
		return fmt.Errorf("resuming ingest %s: the daemon reads %d bytes of the %d written", w.ref, sw.offset, w.offset)
	}
	if err := sw.Commit(ctx, size, expected, opts...); err != nil {
		return err
	}
	w.digest = sw.Digest()
	log.G(ctx).WithField("ref", w.ref).Debug("blob written into the daemon's ingest file")
	return nil
}

// resume opens a session for ref again. Between the end of the session
// that held the ref and this one, another writer may have taken it:
// then this waits for it to let go, as content.OpenWriter waits, and
// finds the blob committed (already exists) or the ingest to resume.
func (s *Store) resume(ctx context.Context, ref string, desc ocispec.Descriptor) (*writer, error) {
	wait := 8 * time.Millisecond
	for {
		w, err := s.open(ctx, ref, desc)
		if !errdefs.IsUnavailable(err) {
			return w, err
		}
		select {
		case <-time.After(wait):
			wait = min(2*wait, time.Second)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the file's writes and the session that held the ref: the
// ingest stays for a later writer of the ref to resume, or for the
// garbage collector (the import's lease holds it until then), as a
// streamed write's.
func (w *fileWriter) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("writing ingest %s: %w", w.ref, err)
	}
	if err := w.held.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("ending the write session of %s: %w", w.ref, err)
	}
	return w.err
}
