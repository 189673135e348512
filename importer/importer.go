package importer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer/contentstream"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Importer imports images into one containerd.
type Importer struct {
	client *client.Client
	// content is the client's content store, its writes streamed when it
	// is the daemon's over gRPC (see contentstream).
	content content.Store
	// images and snapshotter are the client's, but in the read-only pass
	// (see landOnce).
	images      images.Store
	snapshotter snapshots.Snapshotter
	opts        Options
	// local caches probeLocal's answer per snapshotter: one probe per
	// importer, not one per image.
	local *sync.Map
	// caps caches the snapshotter's capabilities (an introspection call)
	// per snapshotter: asked for every image, and again by the writing
	// pass after a read-only one (see landOnce).
	caps *sync.Map
	// policy checks signatures (nil: none asked); policyErr is why the
	// options' keys could not be read: every image fails with it.
	policy    *trust.Policy
	policyErr error
}

// New returns an importer working through c.
func New(c *client.Client, opts Options) *Importer {
	if opts.Snapshotter == "" {
		opts.Snapshotter = defaults.DefaultSnapshotter
	}
	if opts.LeaseExpiry <= 0 {
		opts.LeaseExpiry = defaultLeaseExpiry
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	if opts.UnpackConcurrency <= 0 {
		opts.UnpackConcurrency = runtime.NumCPU()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	im := &Importer{client: c, content: contentstream.New(c.ContentStore(), c.Conn()),
		images: c.ImageService(), snapshotter: c.SnapshotService(opts.Snapshotter), opts: opts, local: &sync.Map{}, caps: &sync.Map{}}
	if opts.Verify.Enabled() {
		im.policy, im.policyErr = trust.New(opts.Verify)
	}
	return im
}

// platformMatcher is what content is imported for.
func (im *Importer) platformMatcher() platforms.MatchComparer {
	if im.opts.AllPlatforms {
		return platforms.All
	}
	if len(im.opts.Platforms) == 0 {
		return platforms.Ordered(platforms.DefaultSpec())
	}
	return platforms.Ordered(im.opts.Platforms...)
}

// unpackPlatforms are the platforms layers are unpacked for.
func (im *Importer) unpackPlatforms() []ocispec.Platform {
	if len(im.opts.Platforms) == 0 {
		return []ocispec.Platform{platforms.DefaultSpec()}
	}
	return im.opts.Platforms
}

// imageLabels are the labels every record gets.
func (im *Importer) imageLabels(ctx context.Context) map[string]string {
	l := maps.Clone(im.opts.Labels)
	if l == nil {
		l = map[string]string{}
	}
	if im.opts.Pin {
		l[labelPinned] = "pinned"
	}
	if ns, _ := namespaces.Namespace(ctx); ns == criNamespace {
		l[labelCRIManaged] = "managed"
	}
	return l
}

// ErrImagesFailed is matched (errors.Is) by the error of a run in which
// some images failed; each failure is in its ImageResult (and was told to
// the Observer).
var ErrImagesFailed = errors.New("images failed")

// FailedError counts the failed images of a run.
type FailedError struct{ Failed, Total int }

func (e *FailedError) Error() string {
	return fmt.Sprintf("%d of %d images failed", e.Failed, e.Total)
}

// Is makes errors.Is(err, ErrImagesFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrImagesFailed }

// failures reports the failed images of a run as one error.
func failures(ctx context.Context, results []ImageResult) error {
	n := 0
	total := 0
	for _, r := range results {
		if r.Skipped == "" {
			total++
		}
		if r.Err != nil {
			log.G(ctx).WithError(r.Err).WithField("image", r.Target).Debug("image failed")
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return &FailedError{Failed: n, Total: total}
}

// stopCause replaces a bare "context canceled" with why ctx was stopped
// (e.g. the CLI's "stopped by SIGINT"), when it was.
func stopCause(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil || cause == ctx.Err() || !errors.Is(err, ctx.Err()) {
		return err
	}
	return stopped{cause: cause, ctxErr: ctx.Err()}
}

// stopped reads as its cause and still matches context.Canceled.
type stopped struct{ cause, ctxErr error }

func (s stopped) Error() string   { return s.cause.Error() }
func (s stopped) Unwrap() []error { return []error{s.cause, s.ctxErr} }
