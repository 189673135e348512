package importer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// errWouldWrite ends a read-only pass (see landOnce) at the first change
// it would make.
var errWouldWrite = errors.New("read-only pass: something to write")

// landOnce runs step read-only first: with stores that answer a write
// changing nothing (a blob or snapshot there already, labels or a record
// that already say the same) as done, and refuse any other. When that
// pass goes through, everything step would make is in place already (a
// re-import): it wrote nothing, so it needed no lease and cost no write
// transaction in the daemon (each is an fsync of its metadata database).
// Otherwise step runs again for real, under the run's lease.
//
// Skipping the lease is safe only because the read-only pass also checks
// the records: it goes through only when every record step would make
// exists already, with the same target, and, through the labels it
// checked, references all the rest (content, snapshots) for the collector.
func landOnce[T any](ctx context.Context, im *Importer, l *runLease, step func(context.Context, *Importer) (T, error)) (T, error) {
	v, err := step(ctx, im.readOnly())
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, errWouldWrite) {
		// Said again by the pass that writes, if it is the seed's fault.
		log.G(ctx).WithError(err).Debug("read-only pass failed")
	}
	lctx, err := l.use(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	return step(lctx, im)
}

// readOnly is im through readOnly services.
func (im *Importer) readOnly() *Importer {
	ro := *im
	ro.svc = im.svc.readOnly()
	return &ro
}

// readOnly wraps every service that can change anything: a change that
// would change nothing is answered as if made, any other is refused
// (errWouldWrite). A field added to Services must be wrapped here.
func (s Services) readOnly() Services {
	ro := s
	ro.Content = &roContent{Store: s.Content}
	ro.Images = &roImages{Store: s.Images}
	if s.Snapshotter != nil {
		var sns memo[string, snapshots.Snapshotter]
		ro.Snapshotter = func(name string) snapshots.Snapshotter {
			sn, _ := sns.get(name, func() (snapshots.Snapshotter, error) {
				if sn := s.Snapshotter(name); sn != nil {
					return &roSnapshotter{Snapshotter: sn}, nil
				}
				return nil, errdefs.ErrNotFound
			})
			return sn
		}
	}
	ro.Leases = roLeases{Manager: s.Leases}
	if s.Applier != nil {
		ro.Applier = roApplier{}
	}
	if s.Namespaces != nil {
		ro.Namespaces = roNamespaces{Store: s.Namespaces}
	}
	// Introspection only reads; Limiter is shared as it is.
	return ro
}

// roContent is a content store for the read-only pass. It remembers
// what it found: the walk asks for each blob's info several times (the
// fetch, the labels, the usability check), and nothing changes it while
// the pass runs but another client, which the pass could race anyway.
type roContent struct {
	content.Store
	infos memo[digest.Digest, content.Info]
}

func (c *roContent) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	return c.infos.get(d, func() (content.Info, error) { return c.Store.Info(ctx, d) })
}

// Writer of a blob the store has says so, as the store would, but
// without adding the blob to a lease (there is none).
func (c *roContent) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Desc.Digest == "" {
		return nil, errWouldWrite
	}
	info, err := c.Info(ctx, wo.Desc.Digest)
	if err != nil || (wo.Desc.Size > 0 && info.Size != wo.Desc.Size) {
		return nil, errWouldWrite
	}
	return nil, fmt.Errorf("content %v: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
}

func (c *roContent) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	cur, err := c.Info(ctx, info.Digest)
	if err != nil || !sameLabels(cur.Labels, info.Labels, fieldpaths) {
		return content.Info{}, errWouldWrite
	}
	return cur, nil
}

func (c *roContent) Delete(context.Context, digest.Digest) error { return errWouldWrite }

func (c *roContent) Abort(context.Context, string) error { return errWouldWrite }

// roImages is an image store for the read-only pass.
type roImages struct {
	images.Store
	got memo[string, images.Image]
}

func (s *roImages) Get(ctx context.Context, name string) (images.Image, error) {
	return s.got.get(name, func() (images.Image, error) { return s.Store.Get(ctx, name) })
}

func (s *roImages) Create(ctx context.Context, img images.Image) (images.Image, error) {
	if _, err := s.Get(ctx, img.Name); err != nil {
		return images.Image{}, errWouldWrite
	}
	// As the store says it; the caller then updates, which is checked.
	return images.Image{}, fmt.Errorf("image %q: %w", img.Name, errdefs.ErrAlreadyExists)
}

func (s *roImages) Update(ctx context.Context, img images.Image, fieldpaths ...string) (images.Image, error) {
	cur, err := s.Get(ctx, img.Name)
	if err != nil || !sameRecord(cur, img, fieldpaths) {
		return images.Image{}, errWouldWrite
	}
	return cur, nil
}

func (s *roImages) Delete(context.Context, string, ...images.DeleteOpt) error { return errWouldWrite }

// roSnapshotter is a snapshotter for the read-only pass: the unpacker
// prepares each layer's snapshot with its chain ID as target, and takes
// "already exists" for a layer unpacked before.
type roSnapshotter struct {
	snapshots.Snapshotter
	stats memo[string, snapshots.Info]
}

func (s *roSnapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	return s.stats.get(key, func() (snapshots.Info, error) { return s.Snapshotter.Stat(ctx, key) })
}

func (s *roSnapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	target := info.Labels[snapshots.LabelSnapshotRef]
	if target == "" {
		return nil, errWouldWrite
	}
	if st, err := s.Stat(ctx, target); err != nil || st.Kind != snapshots.KindCommitted {
		return nil, errWouldWrite
	}
	return nil, fmt.Errorf("target snapshot %q: %w", target, errdefs.ErrAlreadyExists)
}

func (s *roSnapshotter) View(context.Context, string, string, ...snapshots.Opt) ([]mount.Mount, error) {
	return nil, errWouldWrite
}

func (s *roSnapshotter) Commit(context.Context, string, string, ...snapshots.Opt) error {
	return errWouldWrite
}

func (s *roSnapshotter) Update(context.Context, snapshots.Info, ...string) (snapshots.Info, error) {
	return snapshots.Info{}, errWouldWrite
}

func (s *roSnapshotter) Remove(context.Context, string) error { return errWouldWrite }

// roLeases makes no lease: the read-only pass writes nothing to hold.
type roLeases struct{ leases.Manager }

func (roLeases) Create(context.Context, ...leases.Opt) (leases.Lease, error) {
	return leases.Lease{}, errWouldWrite
}

func (roLeases) Delete(context.Context, leases.Lease, ...leases.DeleteOpt) error {
	return errWouldWrite
}

func (roLeases) AddResource(context.Context, leases.Lease, leases.Resource) error {
	return errWouldWrite
}

func (roLeases) DeleteResource(context.Context, leases.Lease, leases.Resource) error {
	return errWouldWrite
}

// roApplier applies nothing (no snapshot to apply to is prepared anyway).
type roApplier struct{}

func (roApplier) Apply(context.Context, ocispec.Descriptor, []mount.Mount, ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, errWouldWrite
}

// roNamespaces lists namespaces and changes none.
type roNamespaces struct{ namespaces.Store }

func (roNamespaces) Create(context.Context, string, map[string]string) error { return errWouldWrite }

func (roNamespaces) SetLabel(context.Context, string, string, string) error { return errWouldWrite }

func (roNamespaces) Delete(context.Context, string, ...namespaces.DeleteOpts) error {
	return errWouldWrite
}

// sameLabels reports whether an update of labels by fieldpaths (as the
// metadata stores read them: none or "labels" replace all, "labels.K"
// sets or, when want lacks K, removes one) would leave have as it is.
func sameLabels(have, want map[string]string, fieldpaths []string) bool {
	if len(fieldpaths) == 0 {
		return equalMaps(have, want)
	}
	for _, p := range fieldpaths {
		if p == "labels" {
			if !equalMaps(have, want) {
				return false
			}
			continue
		}
		k, ok := strings.CutPrefix(p, "labels.")
		if !ok {
			return false
		}
		hv, hok := have[k]
		wv, wok := want[k]
		if hok != wok || hv != wv {
			return false
		}
	}
	return true
}

// sameRecord reports whether updating cur with img would change nothing
// (its timestamps aside).
func sameRecord(cur, img images.Image, fieldpaths []string) bool {
	if len(fieldpaths) > 0 {
		for _, p := range fieldpaths {
			if !strings.HasPrefix(p, "labels") {
				return false
			}
		}
		return sameLabels(cur.Labels, img.Labels, fieldpaths)
	}
	t, u := cur.Target, img.Target
	return t.Digest == u.Digest && t.MediaType == u.MediaType && t.Size == u.Size &&
		equalMaps(t.Annotations, u.Annotations) && equalMaps(cur.Labels, img.Labels)
}

// equalMaps is maps.Equal with nil and empty alike, as the stores keep them.
func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || maps.Equal(a, b))
}

// memo remembers what get found (not what it failed to find).
type memo[K comparable, V any] struct{ m sync.Map }

func (c *memo[K, V]) get(k K, find func() (V, error)) (V, error) {
	if v, ok := c.m.Load(k); ok {
		return v.(V), nil
	}
	v, err := find()
	if err == nil {
		c.m.Store(k, v)
	}
	return v, err
}
