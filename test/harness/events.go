package harness

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
)

// canaryTopic starts the topic of the events Events publishes itself to
// know its subscription is live and caught up; they are not recorded.
const canaryTopic = "/ctr-seed-test/canary/"

// syncWait bounds how long a canary may take to come back.
const syncWait = 10 * time.Second

var canaries atomic.Int64

// Events records the events containerd publishes in one namespace whose
// topic starts with a prefix, from a subscription proven live: it is
// returned only once a canary event it published itself has come back.
type Events struct {
	c      *client.Client
	ns     string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	got     []*events.Envelope
	seen    map[string]bool // canary topics received
	err     error           // why the subscription ended
	changed chan struct{}   // closed, and replaced, on each arrival
}

// SubscribeEvents subscribes to the events of namespace ns whose topic
// starts with prefix ("" for every topic) and returns once the
// subscription is live (a canary came back). The subscription ends with
// the test, or at Stop.
func SubscribeEvents(t testing.TB, c *client.Client, ns, prefix string) *Events {
	t.Helper()
	ctx, cancel := context.WithCancel(NSContext(ns))
	e := &Events{c: c, ns: ns, cancel: cancel, done: make(chan struct{}), seen: map[string]bool{}, changed: make(chan struct{})}
	// Two filters, either matches: the events asked for, and the canaries.
	envs, errs := c.EventService().Subscribe(ctx,
		fmt.Sprintf("namespace==%q,topic~=%q", ns, "^"+regexp.QuoteMeta(prefix)),
		fmt.Sprintf("namespace==%q,topic~=%q", ns, "^"+regexp.QuoteMeta(canaryTopic)))
	go e.run(envs, errs)
	t.Cleanup(e.Stop)
	e.Sync(t)
	return e
}

func (e *Events) run(envs <-chan *events.Envelope, errs <-chan error) {
	defer close(e.done)
	for {
		select {
		case env, ok := <-envs:
			if !ok {
				e.end(fmt.Errorf("subscription closed"))
				return
			}
			e.mu.Lock()
			if strings.HasPrefix(env.Topic, canaryTopic) {
				e.seen[env.Topic] = true
			} else {
				e.got = append(e.got, env)
			}
			close(e.changed)
			e.changed = make(chan struct{})
			e.mu.Unlock()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("subscription ended")
			}
			e.end(err)
			return
		}
	}
}

func (e *Events) end(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.err = err
	close(e.changed)
	e.changed = make(chan struct{})
}

// Stop ends the subscription; what was recorded stays.
func (e *Events) Stop() {
	e.cancel()
	<-e.done
}

// Sync publishes a canary event and waits until it comes back: the
// subscription is live, and every event containerd published before the
// call has been recorded (containerd hands each subscriber its events in
// the order they were published). A subscription reaches the daemon some
// time after Subscribe returns, with no acknowledgement: until one comes
// back, a new canary goes out every canaryEvery.
func (e *Events) Sync(t testing.TB) {
	t.Helper()
	var sent []string
	publish := func() {
		topic := fmt.Sprintf("%sc%d", canaryTopic, canaries.Add(1))
		if err := e.c.EventService().Publish(NSContext(e.ns), topic, &eventstypes.ImageCreate{Name: topic}); err != nil {
			t.Fatalf("harness: publish canary event %s: %v", topic, err)
		}
		e.mu.Lock()
		sent = append(sent, topic)
		e.mu.Unlock()
	}
	publish()
	deadline := time.Now().Add(syncWait)
	for {
		err := e.wait(canaryEvery, func([]*events.Envelope) error {
			for _, c := range sent {
				if e.seen[c] {
					return nil
				}
			}
			return fmt.Errorf("none of the canaries %v received", sent)
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) || e.ended() != nil {
			t.Fatalf("harness: event subscription in %s: %v", e.ns, err)
		}
		publish()
	}
}

// canaryEvery is how long Sync waits for a canary before sending another.
const canaryEvery = 100 * time.Millisecond

func (e *Events) ended() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// All is every event recorded so far, in order.
func (e *Events) All() []*events.Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*events.Envelope(nil), e.got...)
}

// Wait waits, up to timeout, until cond, given every event recorded so
// far, returns nil; it is asked again on each new event, never by the
// clock. It fails the test with cond's last reason.
func (e *Events) Wait(t testing.TB, timeout time.Duration, what string, cond func([]*events.Envelope) error) {
	t.Helper()
	if err := e.wait(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (e *Events) wait(timeout time.Duration, cond func([]*events.Envelope) error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		err := cond(e.got)
		ch, ended := e.changed, e.err
		e.mu.Unlock()
		if err == nil {
			return nil
		}
		if ended != nil {
			return fmt.Errorf("%w (and the subscription ended: %v)", err, ended)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("not after %v: %w", timeout, err)
		}
	}
}

// EventTopics records the topics of the events containerd publishes in
// namespace ns (an image created or updated, a snapshot prepared or
// committed, content deleted) from now until the returned stop is called.
// The subscription is proven live before EventTopics returns, and stop
// waits for a canary published after every event of interest, so an
// empty list means nothing was published, not that nothing arrived yet.
func EventTopics(t testing.TB, c *client.Client, ns string) (stop func() []string) {
	t.Helper()
	e := SubscribeEvents(t, c, ns, "")
	return func() []string {
		e.Sync(t)
		e.Stop()
		var topics []string
		for _, env := range e.All() {
			topics = append(topics, env.Topic)
		}
		return topics
	}
}
