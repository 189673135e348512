package importer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff/apply"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/introspection"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// stores are containerd's own stores in a temp dir, as the daemon wires
// them: a local content store and a snapshotter under the bolt metadata
// store, which keeps the records, leases and namespaces and collects the
// garbage.
type stores struct {
	db  *metadata.DB
	svc Services
	sn  string // the snapshotter's name
}

func newStores(t *testing.T) *stores {
	t.Helper()
	dir := t.TempDir()
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	// overlayfs where this kernel and filesystem have it (root), as on
	// a node; the native snapshotter otherwise.
	name, root := "overlayfs", filepath.Join(dir, "overlayfs")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	var sn snapshots.Snapshotter
	if overlayutils.Supported(root) == nil {
		sn, err = overlay.NewSnapshotter(root)
	} else {
		name = "native"
		sn, err = native.NewSnapshotter(filepath.Join(dir, name))
	}
	if err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := metadata.NewDB(bdb, cs, map[string]snapshots.Snapshotter{name: sn})
	if err := db.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); sn.Close() })
	mcs := db.ContentStore()
	var intro introspection.Service
	if name == "overlayfs" {
		intro = rebaseIntrospection{} // layers applied in parallel, as on a node
	}
	return &stores{db: db, sn: name, svc: Services{
		Content:       mcs,
		Images:        metadata.NewImageStore(db),
		Snapshotter:   db.Snapshotter,
		Leases:        metadata.NewLeaseManager(db),
		Applier:       apply.NewFileSystemApplier(mcs),
		Namespaces:    dbNamespaces{db},
		Introspection: intro,
	}}
}

// importer is an importer on s with opts (the snapshotter s has).
func (s *stores) importer(t *testing.T, opts Options) *Importer {
	t.Helper()
	opts.Snapshotter = s.sn
	im, err := New(s.svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// collect runs the garbage collection the daemon's scheduler runs after a
// lease is deleted.
func (s *stores) collect(t *testing.T) {
	t.Helper()
	if _, err := s.db.GarbageCollect(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// state is what the stores hold in ns: records, blobs, snapshots, leases.
type state struct {
	images    map[string]string // name: target digest
	blobs     int
	snapshots int
	leases    int
}

func (s *stores) state(t *testing.T, ctx context.Context) state {
	t.Helper()
	var st state
	imgs, err := s.svc.Images.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.images = map[string]string{}
	for _, img := range imgs {
		st.images[img.Name] = img.Target.Digest.String()
	}
	if err := s.svc.Content.Walk(ctx, func(content.Info) error { st.blobs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.Snapshotter(s.sn).Walk(ctx, func(context.Context, snapshots.Info) error { st.snapshots++; return nil }); err != nil {
		t.Fatal(err)
	}
	ls, err := s.svc.Leases.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.leases = len(ls)
	return st
}

// dbNamespaces is the metadata store's namespaces, as the daemon's
// namespaces service serves them.
type dbNamespaces struct{ db *metadata.DB }

func (n dbNamespaces) Create(ctx context.Context, ns string, labels map[string]string) error {
	return n.db.Update(func(tx *bolt.Tx) error { return metadata.NewNamespaceStore(tx).Create(ctx, ns, labels) })
}

func (n dbNamespaces) Labels(ctx context.Context, ns string) (l map[string]string, err error) {
	err = n.db.View(func(tx *bolt.Tx) error { l, err = metadata.NewNamespaceStore(tx).Labels(ctx, ns); return err })
	return l, err
}

func (n dbNamespaces) SetLabel(ctx context.Context, ns, key, value string) error {
	return n.db.Update(func(tx *bolt.Tx) error { return metadata.NewNamespaceStore(tx).SetLabel(ctx, ns, key, value) })
}

func (n dbNamespaces) List(ctx context.Context) (l []string, err error) {
	err = n.db.View(func(tx *bolt.Tx) error { l, err = metadata.NewNamespaceStore(tx).List(ctx); return err })
	return l, err
}

func (n dbNamespaces) Delete(ctx context.Context, ns string, opts ...namespaces.DeleteOpts) error {
	return n.db.Update(func(tx *bolt.Tx) error { return metadata.NewNamespaceStore(tx).Delete(ctx, ns, opts...) })
}

// seedOf writes a seed of the images (name: image) and opens it.
func seedOf(t *testing.T, imgs map[string]testseed.Image) *fetcher.Seed {
	t.Helper()
	var sd testseed.Seed
	for name, img := range imgs {
		b, err := testseed.Build(img)
		if err != nil {
			t.Fatal(err)
		}
		sd.Add(name, b.Manifest, b.Blobs)
	}
	var buf bytes.Buffer
	if err := sd.WriteOCITar(&buf); err != nil {
		t.Fatal(err)
	}
	p := testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.tar"), buf.Bytes())
	s, err := fetcher.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// host is this machine's platform: what an import unpacks by default.
func host() ocispec.Platform { return platforms.DefaultSpec() }

// nsCtx is a context in namespace ns.
func nsCtx(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

var (
	_ namespaces.Store = dbNamespaces{}
	_ leases.Manager   = roLeases{}
	_ images.Store     = &roImages{}
)
