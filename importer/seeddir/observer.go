package seeddir

import (
	"context"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
)

// Kind is what happened to a seed.
type Kind string

// What the service tells its Observer, per seed: Seen, then one verdict
// (Skipped, Imported or Failed), with Retried before the import of a seed
// that failed before.
const (
	// Seen: a pass over the directory found the seed, or the watch saw it
	// change (once until its verdict).
	Seen Kind = "seen"
	// Skipped: the seed was left alone; Why says why (unchanged since its
	// import, not an image archive, still being written, failed before).
	Skipped Kind = "skipped"
	// Imported: every image of the seed is in the store; Images names them.
	Imported Kind = "imported"
	// Failed: the seed, or some of its images, failed; Error says why.
	Failed Kind = "failed"
	// Retried: a seed that failed before is being tried again.
	Retried Kind = "retried"
)

// Where an Event came from: the pass at start, a later pass over the
// whole directory (when the watch starts, every rescan), or the watch
// (a change seen in the directory).
const (
	PassBoot   = "boot"
	PassRescan = "rescan"
	PassWatch  = "watch"
)

// Event is one thing the service did with a seed.
type Event struct {
	Kind   Kind     `json:"kind"`
	Seed   string   `json:"seed"`             // its name in the seeds dir
	Pass   string   `json:"pass"`             // PassBoot, PassRescan or PassWatch
	Why    string   `json:"why,omitempty"`    // Skipped
	Images []string `json:"images,omitempty"` // Imported
	Error  string   `json:"error,omitempty"`  // Failed
}

// Observer is told each Event as it happens, in order for one seed (image
// lists are pulled beside the seeds, so their events interleave). It must
// not block for long: the service waits for it.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc is an Observer.
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// Option sets up a Service.
type Option func(*Service)

// WithObserver has the service tell o what it does with each seed (the
// default tells nobody).
func WithObserver(o Observer) Option {
	return func(s *Service) { s.observer = o }
}

// TopicPrefix starts the topic of every event Publish publishes:
// /ctr-seed/seed/imported, /ctr-seed/seed/failed, ...
const TopicPrefix = "/ctr-seed/seed/"

func init() {
	// An Event travels in containerd's envelope as JSON under this type
	// URL; whoever subscribes decodes it with typeurl.UnmarshalAny.
	typeurl.Register(&Event{}, "io.ctr-seed", "seeddir.Event")
}

// Publish is an Observer that publishes each Event on containerd's event
// service, in the namespace of the service's context, under TopicPrefix
// and its Kind: `ctr events` shows them, and a client can wait on them.
// A failure to publish is logged at debug level: the import goes on.
func Publish(p events.Publisher) Observer {
	return ObserverFunc(func(ctx context.Context, e Event) {
		if err := p.Publish(ctx, TopicPrefix+string(e.Kind), &e); err != nil {
			log.G(ctx).WithError(err).WithField("seed", e.Seed).Debug("publishing seed event")
		}
	})
}

// observe tells the observer, if any.
func (s *Service) observe(ctx context.Context, e Event) {
	if s.observer != nil {
		s.observer.Observe(ctx, e)
	}
}

// passKey carries, in a context, which pass (PassBoot, ...) the work
// under way belongs to.
type passKey struct{}

func withPass(ctx context.Context, pass string) context.Context {
	return context.WithValue(ctx, passKey{}, pass)
}

func passOf(ctx context.Context) string {
	if p, ok := ctx.Value(passKey{}).(string); ok {
		return p
	}
	return PassWatch
}

// seedEvent is an Event of kind k about seed, from the pass ctx is in.
func seedEvent(ctx context.Context, k Kind, seed string) Event {
	return Event{Kind: k, Seed: seed, Pass: passOf(ctx)}
}
