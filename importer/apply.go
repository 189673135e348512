package importer

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer/applier"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layerLimits is the bomb cap of this importer's layers. Without unpack
// nothing decompresses a layer, so nothing is capped: counting would only
// inflate every layer for nothing. This is the one place that says so.
func (im *Importer) layerLimits() layerlimit.Limits {
	if im.opts.NoUnpack {
		return layerlimit.Limits{}
	}
	return *im.opts.Limits // New set it
}

// applierFor returns what applies j's layers, and whether layers must be
// held to the bomb cap while they are fetched (asked once per layer).
//
// When the snapshotter's directories are reachable from here (same node,
// root), ctr-seed's applier applies them in process: it caps every layer
// as it decompresses it, and reads a layer this run verified from its seed
// again rather than back from the store. Otherwise the daemon's diff
// service applies them, as for ctr: then every layer is capped before the
// daemon sees it, while it streams into the store when this run writes it
// (guardFetch), or read back from the store when the store had it.
//
// In process, a layer this run writes is read once: tee is the handler
// the unpacker must fetch through (see layerTee).
//
// Which of the two is chosen when the first layer is to be written or
// applied, not before: an import whose layers are all unpacked already
// (a re-import) never probes the snapshotter.
func (im *Importer) applierFor(ctx context.Context, j job, sn snapshots.Snapshotter, inner images.Handler) (a diff.Applier, guardFetch func() bool, tee *layerTee) {
	inProcess := sync.OnceValue(func() bool { return !im.opts.DaemonApply && im.localSnapshots(ctx, sn) })
	daemon := im.svc.Applier
	fromStore := applier.ProviderOpen(im.svc.Content)
	opts := []applier.Opt{applier.WithLimits(im.layerLimits()), applier.WithCapped(j.blobs.isCapped)}
	tee = newLayerTee(ctx, inner, im.svc.Content, inProcess)
	open := func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		l := log.G(ctx).WithField("digest", desc.Digest)
		if rc, ok := tee.open(desc, fromStore); ok {
			l.Debug("layer read once: for the content store and the applier together")
			return rc, nil
		}
		// Not pending: either this run copied it from a seed (hashed on
		// the way), or it is in the store, verified when it was written.
		if j.blobs.isVerifiedFromSeed(desc.Digest) {
			l.Debug("layer read again from its seed")
			return j.seeds.Refetch(ctx, desc)
		}
		l.Debug("layer read from the content store")
		return fromStore(ctx, desc)
	}
	a = chosenApplier{inProcess: inProcess,
		local:  applier.New(open, daemon, opts...),
		daemon: applier.New(fromStore, daemon, append(opts, applier.DaemonOnly())...)}
	return a, func() bool { return !inProcess() }, tee
}

// chosenApplier applies through local when inProcess says so, else through
// daemon.
type chosenApplier struct {
	inProcess     func() bool
	local, daemon diff.Applier
}

func (c chosenApplier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	if c.inProcess() {
		return c.local.Apply(ctx, desc, mounts, opts...)
	}
	return c.daemon.Apply(ctx, desc, mounts, opts...)
}

// localSnapshots reports whether this process can apply layers to the
// snapshotter's directories itself, probing once per importer; a probe
// that could not be made is not remembered.
func (im *Importer) localSnapshots(ctx context.Context, sn snapshots.Snapshotter) bool {
	if v, ok := im.local.Load(im.opts.Snapshotter); ok {
		return v.(bool)
	}
	local, sure := probeLocal(ctx, sn)
	if sure {
		im.local.Store(im.opts.Snapshotter, local)
	}
	return local
}

// probeLocal prepares a scratch snapshot and checks that its directory is
// here, empty and writable by this process; sure is false when the
// snapshot could not be prepared.
func probeLocal(ctx context.Context, sn snapshots.Snapshotter) (local, sure bool) {
	key := fmt.Sprintf("ctr-seed-probe-%d", time.Now().UnixNano())
	mounts, err := sn.Prepare(ctx, key, "")
	if err != nil {
		log.G(ctx).WithError(err).Debug("probe snapshot: applying layers in the daemon")
		return false, false
	}
	defer func() {
		if err := sn.Remove(ctx, key); err != nil {
			log.G(ctx).WithError(err).Warn("removing probe snapshot")
		}
	}()
	ok := applier.Local(mounts)
	log.G(ctx).WithField("local", ok).Debug("probe snapshot: can layers be applied in process")
	return ok, true
}
