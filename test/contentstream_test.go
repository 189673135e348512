package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer/contentstream"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// streamStore is the content store the importer writes through, on the
// test daemon, with a lease that holds what a test writes; with
// contentstream.StreamOnly, every blob streams over gRPC.
func streamStore(t *testing.T, opts ...contentstream.Opt) (context.Context, content.Store) {
	t.Helper()
	c := dclient(t)
	cs := contentstream.New(c.ContentStore(), c.Conn(), opts...)
	if _, ok := cs.(*contentstream.Store); !ok {
		t.Fatalf("a gRPC client's store is %T, not a streaming one", cs)
	}
	ctx, done, err := c.WithLease(nsCtx(namespace(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { done(context.Background()) })
	return ctx, cs
}

func randomBlob(t *testing.T, n int) ([]byte, ocispec.Descriptor) {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(p), Size: int64(n)}
}

func readBlob(t *testing.T, ctx context.Context, cs content.Store, d ocispec.Descriptor) []byte {
	t.Helper()
	got, err := content.ReadBlob(ctx, cs, d)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// writeLabelled writes a random blob of n bytes through cs, with a
// commit label, checks that it lands whole with the label, and returns
// it and what was logged meanwhile.
func writeLabelled(t *testing.T, ctx context.Context, cs content.Store, prefix string, n int) (p []byte, d ocispec.Descriptor, logs string) {
	t.Helper()
	ctx, buf := harness.DebugLogs(ctx)
	p, d = randomBlob(t, n)
	labels := map[string]string{"ctr-seed.test/label": prefix}
	if err := content.WriteBlob(ctx, cs, prefix+d.Digest.Encoded(), bytes.NewReader(p), d, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, ctx, cs, d); !bytes.Equal(got, p) {
		t.Fatalf("blob read back: %d bytes, differs from the %d written", len(got), len(p))
	}
	info, err := cs.Info(ctx, d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != d.Size || info.Labels["ctr-seed.test/label"] != prefix {
		t.Errorf("info: size %d labels %v, want size %d and the commit's label", info.Size, info.Labels, d.Size)
	}
	return p, d, buf.String()
}

// TestContentStreamWritesBlob: a blob of many chunks (more than the
// writer keeps unanswered) lands whole, with the labels of its commit.
func TestContentStreamWritesBlob(t *testing.T) {
	ctx, cs := streamStore(t, contentstream.StreamOnly())
	p, d, logs := writeLabelled(t, ctx, cs, "stream-", 41<<20+123)
	if strings.Contains(logs, directLine) {
		t.Errorf("%q with StreamOnly:\n%s", directLine, logs)
	}
	// Written again: the daemon says it exists, which WriteBlob accepts.
	if err := content.WriteBlob(ctx, cs, "stream-again-"+d.Digest.Encoded(), bytes.NewReader(p), d); err != nil {
		t.Errorf("second write of a stored blob: %v", err)
	}
	if _, err := cs.Writer(ctx, content.WithRef("stream-exists"), content.WithDescriptor(d)); !errdefs.IsAlreadyExists(err) {
		t.Errorf("writer for a stored blob: %v, want already exists", err)
	}
}

// TestContentStreamRefusesWrongDigest: bytes that do not match the
// expected digest are refused at commit by the daemon (failed
// precondition, as through containerd's own writer), and no blob lands.
func TestContentStreamRefusesWrongDigest(t *testing.T) {
	ctx, cs := streamStore(t, contentstream.StreamOnly())
	p, d := randomBlob(t, 5<<20)
	bad := bytes.Clone(p)
	bad[len(bad)/2] ^= 0xff
	err := content.WriteBlob(ctx, cs, "stream-bad-"+d.Digest.Encoded(), bytes.NewReader(bad), d)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("commit of corrupt bytes: %v, want failed precondition", err)
	}
	if _, err := cs.Info(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("blob after a refused commit: %v, want not found", err)
	}
	// Too few bytes for the declared size: refused too.
	w, err := cs.Writer(ctx, content.WithRef("stream-short-"+d.Digest.Encoded()), content.WithDescriptor(d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p[:1<<20]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, d.Size, d.Digest); err == nil {
		t.Errorf("commit of 1 MiB of a %d byte blob succeeded", d.Size)
	}
}

// resumeHalf writes half of a random blob of n bytes through cs and
// closes the writer before its commit; the next writer of the ref must
// start where that stopped, and content.Copy finish it from there (one
// seek of the source). It returns what was logged meanwhile.
func resumeHalf(t *testing.T, ctx context.Context, cs content.Store, prefix string, n int) (logs string) {
	t.Helper()
	ctx, buf := harness.DebugLogs(ctx)
	p, d := randomBlob(t, n)
	ref := prefix + d.Digest.Encoded()
	w, err := cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(d))
	if err != nil {
		t.Fatal(err)
	}
	half := int64(len(p) / 2)
	if _, err := w.Write(p[:half]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w, err = cs.Writer(ctx, content.WithRef(ref), content.WithDescriptor(d)); err != nil {
		t.Fatal(err)
	}
	if st, err := w.Status(); err != nil || st.Offset != half {
		t.Fatalf("resumed writer: %+v (%v), want offset %d", st, err, half)
	}
	src := &seekRecorder{Reader: bytes.NewReader(p)}
	if err := content.Copy(ctx, w, src, d.Size, d.Digest); err != nil {
		t.Fatal(err)
	}
	if len(src.seeks) != 1 || src.seeks[0] != half {
		t.Errorf("copy seeked the source to %v, want once to %d (where the ingest stopped)", src.seeks, half)
	}
	if got := readBlob(t, ctx, cs, d); !bytes.Equal(got, p) {
		t.Fatal("resumed blob differs from the one written")
	}
	return buf.String()
}

// TestContentStreamResumes: a streamed write closed before its commit
// leaves its ingest, which the next writer of the ref resumes.
func TestContentStreamResumes(t *testing.T) {
	ctx, cs := streamStore(t, contentstream.StreamOnly())
	resumeHalf(t, ctx, cs, "stream-resume-", 9<<20)
}

// TestContentStreamCancelled: a write whose context ends fails, and its
// writer still closes.
func TestContentStreamCancelled(t *testing.T) {
	ctx, cs := streamStore(t, contentstream.StreamOnly())
	p, d := randomBlob(t, 3<<20)
	cctx, cancel := context.WithCancel(ctx)
	w, err := cs.Writer(cctx, content.WithRef("stream-cancel-"+d.Digest.Encoded()), content.WithDescriptor(d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p[:1<<20]); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = w.Commit(ctx, d.Size, d.Digest)
	if err == nil || !(errdefs.IsCanceled(err) || errors.Is(err, context.Canceled)) {
		t.Errorf("commit after cancel: %v, want canceled", err)
	}
	if err := w.Close(); err != nil && !errdefs.IsCanceled(err) {
		t.Errorf("close after cancel: %v", err)
	}
}

// seekRecorder records where content.Copy seeks its source to resume.
type seekRecorder struct {
	*bytes.Reader
	seeks []int64
}

func (s *seekRecorder) Seek(off int64, whence int) (int64, error) {
	s.seeks = append(s.seeks, off)
	return s.Reader.Seek(off, whence)
}
