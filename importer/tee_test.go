package importer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer/applier"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// teeRig is a layerTee over containerd's own local content store, fed by
// a fetcher that serves blobs from memory through the importer's
// writeFetcher (which feeds the taps), and counts the reads of each.
type teeRig struct {
	cs    content.Store
	tee   *layerTee
	blobs map[digest.Digest][]byte
	reads map[digest.Digest]*atomic.Int32
}

func newTeeRig(t *testing.T, layers ...[]byte) (*teeRig, []ocispec.Descriptor) {
	t.Helper()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &teeRig{cs: cs, blobs: map[digest.Digest][]byte{}, reads: map[digest.Digest]*atomic.Int32{}}
	var descs []ocispec.Descriptor
	for _, b := range layers {
		d := digest.FromBytes(b)
		r.blobs[d] = b
		r.reads[d] = &atomic.Int32{}
		descs = append(descs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(b))})
	}
	var seedN, regN atomic.Int64
	f := &writeFetcher{
		inner: remotes.FetcherFunc(func(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
			b, ok := r.blobs[desc.Digest]
			if !ok {
				return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
			}
			r.reads[desc.Digest].Add(1)
			return io.NopCloser(bytes.NewReader(b)), nil
		}),
		obs: nopObserver{}, seed: &seedN, registry: &regN, blobs: newRunBlobs(), limits: NewLimiter(0, 0),
	}
	r.tee = newLayerTee(context.Background(), remotes.FetchHandler(cs, f), cs, func() bool { return true })
	f.tee = r.tee
	return r, descs
}

func (r *teeRig) fromStore() applier.OpenFunc { return applier.ProviderOpen(r.cs) }

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *teeRig) inStore(t *testing.T, d digest.Digest) bool {
	t.Helper()
	_, err := r.cs.Info(context.Background(), d)
	return err == nil
}

// A layer the store lacks is pending after the fetch handler; the
// applier's read starts its write and gets every byte; EOF comes only once
// the blob is committed; the seed is read once.
func TestTeeOneReadCommittedBeforeEOF(t *testing.T) {
	ctx := context.Background()
	layer := randomBytes(t, 5*tapChunkSize+123) // more chunks than the tap holds
	r, descs := newTeeRig(t, layer)
	d := descs[0]
	if _, err := r.tee.Handle(ctx, d); err != nil {
		t.Fatal(err)
	}
	if r.inStore(t, d.Digest) || r.reads[d.Digest].Load() != 0 {
		t.Fatal("the fetch handler wrote the layer: it should be left for the applier")
	}
	rc, ok := r.tee.open(d, r.fromStore())
	if !ok {
		t.Fatal("no tap for a pending layer")
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, layer) {
		t.Fatalf("read %d bytes through the tap, not the layer's %d", len(got), len(layer))
	}
	if !r.inStore(t, d.Digest) {
		t.Error("EOF before the blob was committed")
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if n := r.reads[d.Digest].Load(); n != 1 {
		t.Errorf("the seed was read %d times, want 1", n)
	}
	if err := r.tee.finish(nil, 2); err != nil {
		t.Fatal(err)
	}
}

// A layer no applier asks for (its snapshot existed) is written by finish;
// after a failed transfer, it is not written at all.
func TestTeeFinishWritesIdleLayers(t *testing.T) {
	ctx := context.Background()
	r, descs := newTeeRig(t, randomBytes(t, 1000), randomBytes(t, 2000))
	for _, d := range descs {
		if _, err := r.tee.Handle(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.tee.finish(nil, 1); err != nil {
		t.Fatal(err)
	}
	for _, d := range descs {
		if !r.inStore(t, d.Digest) {
			t.Errorf("idle layer %s not written by finish", d.Digest)
		}
	}

	r, descs = newTeeRig(t, randomBytes(t, 1000))
	if _, err := r.tee.Handle(ctx, descs[0]); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("an apply failed")
	if err := r.tee.finish(failed, 1); err != failed {
		t.Errorf("finish = %v, want the transfer's error", err)
	}
	if r.inStore(t, descs[0].Digest) || r.reads[descs[0].Digest].Load() != 0 {
		t.Error("a failed transfer still wrote its idle layer")
	}
}

// An applier that stops early (its apply failed) does not stall the
// write: the rest is dropped and the write ends; a layer whose bytes do
// not match its digest fails at Close with the write's error.
func TestTeeEarlyCloseAndDigestMismatch(t *testing.T) {
	ctx := context.Background()
	layer := randomBytes(t, 8*tapChunkSize)
	r, descs := newTeeRig(t, layer)
	d := descs[0]
	r.tee.Handle(ctx, d)
	rc, _ := r.tee.open(d, r.fromStore())
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close after an early stop: %v", err)
	}
	if !r.inStore(t, d.Digest) {
		t.Error("the write did not go on to the end of the layer")
	}

	r, descs = newTeeRig(t, randomBytes(t, 3*tapChunkSize))
	d = descs[0]
	corrupt := bytes.Clone(r.blobs[d.Digest])
	corrupt[len(corrupt)/2] ^= 0xff
	r.blobs[d.Digest] = corrupt
	r.tee.Handle(ctx, d)
	rc, _ = r.tee.open(d, r.fromStore())
	_, rerr := io.ReadAll(rc)
	cerr := rc.Close()
	if rerr == nil || cerr == nil || !errdefs.IsFailedPrecondition(writeCause(cerr)) {
		t.Fatalf("corrupt layer: read error %v, close error %v; want both, close's a digest mismatch", rerr, cerr)
	}
	if !strings.Contains(writeCause(cerr).Error(), "digest") {
		t.Errorf("close error %q does not say digest", cerr)
	}
	if r.inStore(t, d.Digest) {
		t.Error("a corrupt layer was committed")
	}
	if err := r.tee.finish(nil, 1); err != nil {
		t.Errorf("finish after a started, failed write: %v (its error is the applier's to report)", err)
	}
}

// A layer committed by another writer first (the write reads nothing) is
// read from the store; one in the store before the walk is not pending.
func TestTeeNotFedReadsStore(t *testing.T) {
	ctx := context.Background()
	layer := randomBytes(t, 4096)
	r, descs := newTeeRig(t, layer)
	d := descs[0]
	r.tee.Handle(ctx, d)
	// Another writer lands the blob between the walk and the apply.
	if err := content.WriteBlob(ctx, r.cs, "other", bytes.NewReader(layer), d); err != nil {
		t.Fatal(err)
	}
	rc, ok := r.tee.open(d, r.fromStore())
	if !ok {
		t.Fatal("no tap for a pending layer")
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("read %d bytes, %v; want the layer from the store", len(got), err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if n := r.reads[d.Digest].Load(); n != 0 {
		t.Errorf("the seed was read %d times; the store had the blob", n)
	}
	if _, err := r.tee.Handle(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.tee.open(ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2LayerGzip, Digest: digest.FromString("x")}, r.fromStore()); ok {
		t.Error("a tap for a layer that was never pending")
	}
}
