package test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
)

// directLine is what contentstream logs for a blob it wrote into the
// daemon's ingest file.
const directLine = "blob written into the daemon's ingest file"

// TestContentDirectWritesBlob: a big blob is written into the daemon's
// ingest file (this test runs on the daemon's node, as root), and lands
// whole, with its commit's labels, leaving no ingest.
func TestContentDirectWritesBlob(t *testing.T) {
	ctx, cs := streamStore(t)
	_, _, logs := writeLabelled(t, ctx, cs, "direct-", 41<<20+123)
	if !strings.Contains(logs, directLine) {
		t.Errorf("no %q line: the blob streamed:\n%s", directLine, logs)
	}
	if sts, err := cs.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Errorf("ingests left: %v (%v)", sts, err)
	}
}

// TestContentDirectRefusesWrongBytes: the daemon hashes the ingest file
// at the commit: bytes that do not match the digest, or too few of them,
// are refused (failed precondition), and no blob lands.
func TestContentDirectRefusesWrongBytes(t *testing.T) {
	ctx, cs := streamStore(t)
	p, d := randomBlob(t, 6<<20)
	bad := bytes.Clone(p)
	bad[len(bad)/2] ^= 0xff
	err := content.WriteBlob(ctx, cs, "direct-bad-"+d.Digest.Encoded(), bytes.NewReader(bad), d)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), d.Digest.String()) {
		t.Fatalf("commit of corrupt bytes: %v, want failed precondition naming %s", err, d.Digest)
	}
	w, err := cs.Writer(ctx, content.WithRef("direct-short-"+d.Digest.Encoded()), content.WithDescriptor(d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p[:1<<20]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, d.Size, d.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("commit of 1 MiB of a %d byte blob: %v, want failed precondition", d.Size, err)
	}
	if _, err := cs.Info(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("blob after refused commits: %v, want not found", err)
	}
}

// TestContentDirectSameBlobAtOnce: two writers of one blob under one ref
// at the same time (a layer listed twice) both succeed: each writes an
// ingest of its own, the second commit finds the blob there.
func TestContentDirectSameBlobAtOnce(t *testing.T) {
	ctx, cs := streamStore(t)
	p, d := randomBlob(t, 24<<20)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			errs <- content.WriteBlob(ctx, cs, "direct-twice-"+d.Digest.Encoded(), bytes.NewReader(p), d)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := readBlob(t, ctx, cs, d); !bytes.Equal(got, p) {
		t.Fatal("blob differs from the one written")
	}
}

// TestContentDirectSharedBlob: a blob another namespace holds needs no
// bytes (containerd shares content between namespaces): the writer
// commits it at once.
func TestContentDirectSharedBlob(t *testing.T) {
	ctx, cs := streamStore(t)
	p, d := randomBlob(t, 8<<20)
	if err := content.WriteBlob(ctx, cs, "direct-shared-"+d.Digest.Encoded(), bytes.NewReader(p), d); err != nil {
		t.Fatal(err)
	}
	other, done, err := dclient(t).WithLease(nsCtx(namespace(t) + "-other"))
	if err != nil {
		t.Fatal(err)
	}
	defer done(context.Background())
	w, err := cs.Writer(other, content.WithRef("direct-shared-"+d.Digest.Encoded()), content.WithDescriptor(d))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.Status(); err != nil || st.Offset != d.Size {
		t.Fatalf("writer of a shared blob: status %+v (%v), want offset %d", st, err, d.Size)
	}
	if err := w.Commit(other, d.Size, d.Digest); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, other, cs, d); !bytes.Equal(got, p) {
		t.Fatal("shared blob differs from the one written")
	}
}

// TestContentDirectResumes: a write into the ingest file closed before
// its commit leaves the ingest; the next writer of the ref resumes it
// where it stopped (the daemon hashed what is there), and content.Copy
// writes only the rest.
func TestContentDirectResumes(t *testing.T) {
	ctx, cs := streamStore(t)
	if logs := resumeHalf(t, ctx, cs, "direct-resume-", 12<<20+7); !strings.Contains(logs, directLine) {
		t.Errorf("no %q line:\n%s", directLine, logs)
	}
}
