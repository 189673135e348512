package importer

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Importer imports images into one containerd.
type Importer struct {
	// svc is all the importer reaches: in the read-only pass, wrapped as a
	// whole (see landOnce).
	svc  Services
	opts Options
	// local caches probeLocal's answer per snapshotter: one probe per
	// importer, not one per image.
	local *sync.Map
	// caps caches the snapshotter's capabilities (an introspection call)
	// per snapshotter: asked for every image, and again by the writing
	// pass after a read-only one (see landOnce).
	caps *sync.Map
	// policy checks signatures (nil: none asked).
	policy *trust.Policy
}

// New returns an importer working through svc (FromClient for a client's).
// Its errors are the options' (keys that are no public keys, an unknown
// verify mode) and the services missing for them.
func New(svc Services, opts Options) (*Importer, error) {
	p, err := opts.policy()
	if err != nil {
		return nil, err
	}
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
	limits := layerlimit.Default()
	if opts.Limits != nil {
		limits = *opts.Limits // a copy: the caller's may change
	}
	opts.Limits = &limits
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if err := svc.check(opts); err != nil {
		return nil, err
	}
	if svc.Limiter == nil {
		svc.Limiter = DefaultLimiter()
	}
	return &Importer{svc: svc, opts: opts, local: &sync.Map{}, caps: &sync.Map{}, policy: p}, nil
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
	return Summary{Total: e.Total, Failed: e.Failed}.String()
}

// Is makes errors.Is(err, ErrImagesFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrImagesFailed }

// failures reports the failed images of a run as one error.
func failures(ctx context.Context, results []ImageResult) error {
	for _, r := range results {
		if r.Err != nil {
			log.G(ctx).WithError(r.Err).WithField("image", r.Target).Debug("image failed")
		}
	}
	return Summarize(results).Err()
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
