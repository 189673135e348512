package importer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/unpack"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// job is one image to bring into the content store and snapshotter.
type job struct {
	desc    ocispec.Descriptor // the image's root: a manifest or an index
	name    string             // a full reference, for distribution-source labels; may be ""
	fetcher remotes.Fetcher
	seeds   fetcher.Seeds
	limit   int // manifests per index to keep (pull keeps 1); 0 = all matching

	blobs *runBlobs // what this job's writes learnt
}

// transfer writes the content of j and unpacks it, and returns the bytes
// written from seeds and from the registry. It creates no records.
func (im *Importer) transfer(ctx context.Context, j job) (fromSeed, fromRegistry int64, fromStore int, err error) {
	var seedN, regN atomic.Int64
	j.blobs = newRunBlobs()
	cs := im.svc.Content
	f := &writeFetcher{inner: j.fetcher, image: j.name, obs: im.opts.Observer, seed: &seedN, registry: &regN, blobs: j.blobs, limits: im.svc.Limiter}

	matcher := im.platformMatcher()
	children := images.ChildrenHandler(cs)
	var gcLabels func(ocispec.Descriptor) []string
	if im.opts.DiscardUnpackedLayers && !im.opts.NoUnpack {
		// No GC reference from the manifest to its layers: once the lease
		// goes, the collector removes them; the snapshots hold the image.
		gcLabels = images.ChildGCLabelsFilterLayers
	}
	children = images.SetChildrenMappedLabels(cs, children, gcLabels)
	children = images.FilterPlatforms(children, matcher)
	if j.limit > 0 {
		children = images.LimitManifests(children, matcher, j.limit)
	}
	handlers := []images.Handler{checkSeeds(j.seeds, j.blobs), im.fetchHandler(f), children}
	if j.name != "" {
		if dist, err := docker.AppendDistributionSourceLabel(cs, j.name); err == nil {
			handlers = append(handlers, dist)
		}
	}
	var h images.Handler = images.Handlers(handlers...)

	var unpacker *unpack.Unpacker
	var tee *layerTee
	if !im.opts.NoUnpack {
		var sn snapshots.Snapshotter
		if sn, err = im.snapshotter(); err != nil {
			return 0, 0, 0, err
		}
		a, guardFetch, t := im.applierFor(ctx, j, sn, h)
		limits := im.layerLimits()
		f.guard, f.guardOn = &limits, guardFetch
		if unpacker, err = im.newUnpacker(ctx, sn, a); err != nil {
			return 0, 0, 0, err
		}
		tee, f.tee, h = t, t, t
		h = unpacker.Unpack(h)
	}
	err = images.Dispatch(ctx, h, semaphore.NewWeighted(int64(im.opts.Concurrency)), j.desc)
	if unpacker != nil {
		// Wait even after a failure: the unpacker's goroutines must stop
		// before the lease (and with it their snapshots) is dropped.
		// (The unpacker also fetches the layers, so its error may be a
		// write's as well as an apply's: no "unpack" label here.)
		if _, uerr := unpacker.Wait(); err == nil && uerr != nil {
			err = uerr
		}
	}
	if tee != nil {
		err = writeCause(tee.finish(err, im.opts.Concurrency))
	}
	return seedN.Load(), regN.Load(), j.blobs.fromStore(), distinct(err)
}

// distinct collapses an errors.Join of repeated causes. containerd's
// parallel unpacker reports a failed fetch once per layer waiting on it,
// and "aborted" for layers stopped by another's failure; one line should
// say the cause once.
func distinct(err error) error {
	var flat []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		flat = append(flat, e)
	}
	if _, ok := err.(interface{ Unwrap() []error }); !ok {
		return err
	}
	walk(err)
	seen := map[string]bool{}
	var out []error
	for _, e := range flat {
		if msg := e.Error(); !seen[msg] && msg != "aborted" {
			seen[msg] = true
			out = append(out, e)
		}
	}
	switch len(out) {
	case 0:
		return err
	case 1:
		return out[0]
	}
	return errors.Join(out...)
}

// checkSeeds comes first for every descriptor an import walks: it refuses
// a malformed digest (before anything formats or fetches it) and a blob
// some seed holds unusably (fetcher.Seeds.Check), before the FetchHandler
// skips it for being in the store already; and it records the blobs a
// seed holds, to tell afterwards which of them the store had already.
func checkSeeds(seeds fetcher.Seeds, blobs *runBlobs) images.HandlerFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("descriptor %q (%s): invalid digest: %v: %w", desc.Digest, fetcher.Escape(desc.MediaType), err, errdefs.ErrInvalidArgument)
		}
		if desc.Size < 0 {
			return nil, fmt.Errorf("blob %s: invalid size %d: %w", desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
		}
		held, err := seeds.Check(desc)
		if held && blobs != nil {
			blobs.markHeld(desc.Digest)
		}
		return nil, err
	}
}

// fetchHandler is containerd's FetchHandler, which skips what the store
// already has; with SkipMissing, a manifest no source holds is skipped.
func (im *Importer) fetchHandler(f remotes.Fetcher) images.HandlerFunc {
	// Every blob written holds a slot of the shared limiter while it is
	// copied, whoever asked for it: the walk, the unpacker, the tee. A
	// writeFetcher takes its slots itself; any other fetcher here reads
	// seeds only (an index, signatures).
	var cs content.Ingester = im.svc.Content
	if wf, ok := f.(*writeFetcher); ok {
		cs = committing{Ingester: im.svc.Content, f: wf}
	} else {
		f = limitedFetcher{Fetcher: f, l: im.svc.Limiter.seeds}
	}
	fetch := remotes.FetchHandler(cs, f)
	return func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := fetch(ctx, desc)
		if err != nil && im.opts.SkipMissing && errdefs.IsNotFound(err) && isSkippable(desc, im.unpackPlatforms()) {
			log.G(ctx).WithField("digest", desc.Digest).Info("skipping manifest absent from the seeds (--skip-missing)")
			return nil, images.ErrSkipDesc
		}
		return children, err
	}
}

// isSkippable: only manifests for platforms that are not unpacked may be
// missing; an image that is unpacked must be whole.
func isSkippable(desc ocispec.Descriptor, unpacked []ocispec.Platform) bool {
	if !images.IsManifestType(desc.MediaType) || desc.Platform == nil {
		return false
	}
	for _, p := range unpacked {
		if platforms.Only(p).Match(*desc.Platform) {
			return false
		}
	}
	return true
}

func (im *Importer) newUnpacker(ctx context.Context, sn snapshots.Snapshotter, a diff.Applier) (*unpack.Unpacker, error) {
	name := im.opts.Snapshotter
	var caps []string
	if v, ok := im.caps.Load(name); ok {
		caps = v.([]string)
	} else {
		var err error
		if caps, err = im.svc.snapshotterCapabilities(ctx, name); err != nil {
			return nil, fmt.Errorf("snapshotter %q: %w", name, err)
		}
		im.caps.Store(name, caps)
	}
	var uopts []unpack.UnpackerOpt
	for _, p := range im.unpackPlatforms() {
		uopts = append(uopts, unpack.WithUnpackPlatform(unpack.Platform{
			// containerd's transfer service (what `ctr images import` uses)
			// unpacks every manifest it imports whose OS matches
			// (check_platform_supported = false): so do we, for the same
			// snapshots. With --all-platforms that is every linux platform.
			Platform:                platforms.OnlyOS(p),
			SnapshotterKey:          name,
			Snapshotter:             goneIsRemoved{sn},
			Applier:                 a,
			ApplyOpts:               []diff.ApplyOpt{diff.WithSyncFs(im.opts.SyncFs)},
			SnapshotterCapabilities: caps,
		}))
	}
	// Fetch layers even when their snapshots exist, so the content store
	// holds the whole image, as after `ctr images import`; unless layers
	// are discarded once unpacked: then a layer whose snapshot exists is
	// not read again.
	if !im.opts.DiscardUnpackedLayers {
		uopts = append(uopts, unpack.WithFetchAllContent())
	}
	// Layers are applied in parallel where the snapshotter can rebase
	// (overlayfs can): the unpacker then commits the chain in order.
	// Within this call's own bound, and the process's (see Limiter).
	uopts = append(uopts, unpack.WithUnpackLimiter(both{own: semaphore.NewWeighted(int64(im.opts.UnpackConcurrency)), shared: im.svc.Limiter.applies}))
	return unpack.NewUnpacker(ctx, im.svc.Content, uopts...)
}

// goneIsRemoved is the unpacker's snapshotter, on which removing a
// snapshot that is already gone succeeds: when an import fails, its
// lease's collection can remove the extraction snapshot before the
// unpacker's own cleanup does, which containerd would log at error level
// (`failed to cleanup "extract-…": not found`) for a snapshot that is, as
// wanted, not there.
type goneIsRemoved struct{ snapshots.Snapshotter }

func (s goneIsRemoved) Remove(ctx context.Context, key string) error {
	if err := s.Snapshotter.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
