package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

const demo = "docker.io/library/demo:1.0"

// An import of a small seed lands its record, its blobs and its snapshot
// chain in containerd's own stores, and keeps no lease.
func TestImportLandsInStores(t *testing.T) {
	s := newStores(t)
	seed := seedOf(t, map[string]testseed.Image{demo: testseed.Standard(demo, host(), false, testseed.Gzip)})
	ctx := nsCtx("default")
	results, err := s.importer(t, Options{}).Import(ctx, fetcher.Seeds{seed})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	s.collect(t)
	if len(results) != 1 || results[0].Err != nil || len(results[0].Names) != 1 || results[0].Names[0] != demo {
		t.Fatalf("results: %+v", results)
	}
	st := s.state(t, ctx)
	if got := st.images[demo]; got != results[0].Target.String() {
		t.Errorf("record %s targets %q, want %s (records %v)", demo, got, results[0].Target, st.images)
	}
	// manifest, config, 3 layers; one snapshot per layer.
	if st.blobs != 5 || st.snapshots != 3 || st.leases != 0 {
		t.Errorf("stores hold %d blobs, %d snapshots, %d leases; want 5, 3, 0", st.blobs, st.snapshots, st.leases)
	}
	img, err := s.svc.Images.Get(ctx, demo)
	if err != nil {
		t.Fatal(err)
	}
	if img.Labels[LabelSeedVersion] != seed.Index().Digest.String() || img.Labels[LabelSeed] != "seed.tar" {
		t.Errorf("record labels %v: want the seed's provenance", img.Labels)
	}
	if results[0].FromSeed == 0 || results[0].FromStore != 0 {
		t.Errorf("first import: %d bytes from the seed, %d blobs from the store; want some and none", results[0].FromSeed, results[0].FromStore)
	}
}

// Importing the same seed again writes nothing: not one write transaction
// in the metadata store (no lease, no blob, no snapshot, no record
// update), nothing ingested; the read-only pass finds it all in place.
func TestReimportWritesNothing(t *testing.T) {
	s := newStores(t)
	seed := seedOf(t, map[string]testseed.Image{demo: testseed.Standard(demo, host(), false, testseed.Gzip)})
	ctx := nsCtx("default")
	im := s.importer(t, Options{Pin: true, DigestRefs: true})
	if _, err := im.Import(ctx, fetcher.Seeds{seed}); err != nil {
		t.Fatalf("first import: %v", err)
	}
	s.collect(t)
	before := s.state(t, ctx)
	var writes atomic.Int64
	s.db.RegisterMutationCallback(func(bool) { writes.Add(1) })
	// A canary: the counter sees a write when there is one.
	if err := s.svc.Namespaces.SetLabel(ctx, "default", "canary", "1"); err != nil {
		t.Fatal(err)
	}
	if writes.Load() != 1 {
		t.Fatalf("the mutation callback counted %d writes of one label; want 1", writes.Load())
	}
	writes.Store(0)
	// Another importer, as a second process would be: nothing cached.
	results, err := s.importer(t, Options{Pin: true, DigestRefs: true}).Import(ctx, fetcher.Seeds{seed})
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("re-import made %d write transactions; want none", n)
	}
	if len(results) != 1 || results[0].FromSeed != 0 || results[0].FromStore != 5 || len(results[0].Names) != 2 {
		t.Errorf("re-import results %+v: want nothing read from the seed, 5 blobs from the store, 2 names", results)
	}
	if after := s.state(t, ctx); !sameState(before, after) {
		t.Errorf("stores changed: %+v, then %+v", before, after)
	}
	if sts, err := s.svc.Content.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Errorf("ingests after the re-import: %v, %v", sts, err)
	}
}

// A failing import leaves nothing: no record, and once its lease is gone
// and the garbage collected, no blob, snapshot or ingest of it.
func TestFailedImportLeavesNothing(t *testing.T) {
	s := newStores(t)
	img := testseed.Standard(demo, host(), false, testseed.Gzip)
	b, err := testseed.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	// The last layer, corrupt: same size, one byte changed.
	last := b.Layers[len(b.Layers)-1].Digest
	bad := append([]byte(nil), b.Blobs[last]...)
	bad[len(bad)/2] ^= 0xff
	b.Blobs[last] = bad
	var sd testseed.Seed
	sd.Add(demo, b.Manifest, b.Blobs)
	p := filepath.Join(t.TempDir(), "bad.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.WriteOCITar(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	seed, err := fetcher.Open(nsCtx("default"), p)
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()

	ctx := nsCtx("default")
	results, err := s.importer(t, Options{}).Import(ctx, fetcher.Seeds{seed})
	if !errors.Is(err, ErrImagesFailed) || len(results) != 1 || results[0].Err == nil {
		t.Fatalf("import of a corrupt layer: %v, %+v; want the image failed", err, results)
	}
	if !strings.Contains(results[0].Err.Error(), last.String()) {
		t.Errorf("error %q does not name the corrupt blob %s", results[0].Err, last)
	}
	s.collect(t)
	st := s.state(t, ctx)
	if len(st.images) != 0 || st.blobs != 0 || st.snapshots != 0 || st.leases != 0 {
		t.Errorf("a failed import left %+v; want nothing", st)
	}
	if sts, err := s.svc.Content.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Errorf("ingests left: %v, %v", sts, err)
	}
}

// New fails on options it cannot import with, rather than failing every
// image later; and on services missing for the options.
func TestNewRefuses(t *testing.T) {
	s := newStores(t)
	_, err := New(s.svc, Options{Verify: trust.Options{Keys: []trust.Key{{Name: "k.pub", PEM: []byte("not a key")}}}})
	if err == nil || !strings.Contains(err.Error(), "k.pub") {
		t.Errorf("New with a key that is no key: %v; want an error naming it", err)
	}
	_, err = New(s.svc, Options{Verify: trust.Options{Keys: []trust.Key{{Name: "k.pub"}}, Mode: "sometimes"}})
	if err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("New with an unknown verify mode: %v", err)
	}
	svc := s.svc
	svc.Snapshotter = nil
	if _, err := New(svc, Options{}); err == nil || !strings.Contains(err.Error(), "snapshotter") {
		t.Errorf("New without a snapshotter: %v", err)
	}
	if _, err := New(svc, Options{NoUnpack: true}); err != nil {
		t.Errorf("New without a snapshotter, not unpacking: %v", err)
	}
}

func sameState(a, b state) bool {
	if len(a.images) != len(b.images) || a.blobs != b.blobs || a.snapshots != b.snapshots || a.leases != b.leases {
		return false
	}
	for k, v := range a.images {
		if b.images[k] != v {
			return false
		}
	}
	return true
}

var _ content.Store = &roContent{}
