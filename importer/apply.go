package importer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer/applier"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// applierFor returns what applies j's layers: ctr-seed's in-process
// applier when the snapshotter's directories are reachable from here
// (same node, root), which reads layers straight from the seeds and
// enforces the bomb guard as it decompresses; otherwise the daemon's diff
// service, as ctr uses, after the guard has run over the registry's
// layers (the seeds' are guarded as they are fetched). local tells the
// fetch path to leave the guard to the applier.
func (im *Importer) applierFor(ctx context.Context, j job, sn snapshots.Snapshotter) (a diff.Applier, local bool) {
	daemon := im.client.DiffService()
	cs := im.client.ContentStore()
	registryCap := func(desc ocispec.Descriptor) (int64, func(int64) error, bool) {
		if im.opts.RegistryLayerCap != nil {
			return im.opts.RegistryLayerCap(desc)
		}
		return j.seeds.LayerCap(desc)
	}
	if im.opts.DaemonApply || !im.localSnapshots(ctx, sn) {
		onlyRegistry := func(desc ocispec.Descriptor) (int64, func(int64) error, bool) {
			if j.seeds.Has(desc) {
				return 0, nil, false // guarded as it was fetched
			}
			return registryCap(desc)
		}
		return applier.CheckOnly(applier.ProviderOpen(cs), daemon, onlyRegistry), false
	}
	capOf := func(desc ocispec.Descriptor) (int64, func(int64) error, bool) {
		if j.seeds.Has(desc) {
			return j.seeds.LayerCap(desc)
		}
		return registryCap(desc)
	}
	fromStore := applier.ProviderOpen(cs)
	open := func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		// A layer this run copied from a seed (hashed on the way) is read
		// there again; any other is in the store already (the unpacker
		// applies only after fetching), verified when it was written.
		if _, ok := j.verified.Load(desc.Digest); ok {
			return j.seeds.FetchLayerForApply(ctx, desc)
		}
		return fromStore(ctx, desc)
	}
	return applier.New(open, daemon, capOf), true
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
