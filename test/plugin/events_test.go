package plugin_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// seedEvents are the events the seeds-directory service (the plugin, or
// serve) publishes on containerd's event service, recorded from a
// subscription proven live: tests wait on them instead of the clock.
type seedEvents struct {
	ev    *harness.Events
	seeds string // the seeds dir, where settle drops its canaries
}

// watchSeedEvents records the seed events published in ns from now on.
// Events published before (the plugin's boot pass, which runs while
// containerd starts) are not seen: settle tells when that pass is over.
func watchSeedEvents(t *testing.T, c *client.Client, ns, seeds string) *seedEvents {
	t.Helper()
	return &seedEvents{ev: harness.SubscribeEvents(t, c, ns, seeddir.TopicPrefix), seeds: seeds}
}

// watch is watchSeedEvents for the plugin daemon's namespace and seeds dir.
func (p *pluginDaemon) watch(t *testing.T) *seedEvents {
	t.Helper()
	return watchSeedEvents(t, p.c, p.ns, p.seeds)
}

func decodeSeedEvents(envs []*events.Envelope) ([]seeddir.Event, error) {
	out := make([]seeddir.Event, 0, len(envs))
	for _, env := range envs {
		v, err := typeurl.UnmarshalAny(env.Event)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", env.Topic, err)
		}
		e, ok := v.(*seeddir.Event)
		if !ok {
			return nil, fmt.Errorf("event %s: a %T, want a seeddir.Event", env.Topic, v)
		}
		if env.Topic != seeddir.TopicPrefix+string(e.Kind) {
			return nil, fmt.Errorf("event of kind %s on topic %s", e.Kind, env.Topic)
		}
		out = append(out, *e)
	}
	return out, nil
}

// all is every seed event recorded so far.
func (s *seedEvents) all(t *testing.T) []seeddir.Event {
	t.Helper()
	evs, err := decodeSeedEvents(s.ev.All())
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// of is the events of kind about seed recorded so far.
func (s *seedEvents) of(t *testing.T, kind seeddir.Kind, seed string) []seeddir.Event {
	t.Helper()
	return eventsOf(s.all(t), kind, seed)
}

func eventsOf(evs []seeddir.Event, kind seeddir.Kind, seed string) []seeddir.Event {
	var out []seeddir.Event
	for _, e := range evs {
		if e.Kind == kind && e.Seed == seed {
			out = append(out, e)
		}
	}
	return out
}

// wait waits up to timeout until cond, given every seed event so far,
// returns nil; it is asked again on each event.
func (s *seedEvents) wait(t *testing.T, timeout time.Duration, what string, cond func([]seeddir.Event) error) {
	t.Helper()
	s.ev.Wait(t, timeout, what, func(envs []*events.Envelope) error {
		evs, err := decodeSeedEvents(envs)
		if err != nil {
			return err
		}
		return cond(evs)
	})
}

// waitCount waits until n events of kind about each of seeds are recorded.
func (s *seedEvents) waitCount(t *testing.T, n int, kind seeddir.Kind, seeds ...string) {
	t.Helper()
	s.wait(t, importWait, fmt.Sprintf("%d %s event(s) for %v", n, kind, seeds), func(evs []seeddir.Event) error {
		for _, seed := range seeds {
			if got := len(eventsOf(evs, kind, seed)); got < n {
				return fmt.Errorf("%d %s event(s) for %s:\n%s", got, kind, seed, describe(evs))
			}
		}
		return nil
	})
}

// describe lists evs, one a line, for a failure message.
func describe(evs []seeddir.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s (%s)", e.Kind, e.Seed, e.Pass)
		if e.Why != "" {
			fmt.Fprintf(&b, " why=%q", e.Why)
		}
		if e.Error != "" {
			fmt.Fprintf(&b, " error=%q", e.Error)
		}
		if len(e.Images) > 0 {
			fmt.Fprintf(&b, " images=%v", e.Images)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

var canaries atomic.Int64

// canaryPrefix names settle's canaries: after every seed name of these
// tests in sort order, so that of seeds ready at the same moment the
// canary is judged last.
const canaryPrefix = "zzzz-canary-"

// settle returns once the service has dealt with every change made to the
// seeds dir before the call (a seed with the usual quiet period): the
// passes over the whole dir are over, and the watch has judged a canary
// (a file that is no image archive) dropped in after those changes. The
// watch reads the directory's changes in order and judges seeds that are
// ready at the same moment in name order, the canary last: anything the
// earlier changes were to cause (a second import, an error) has happened
// by then. A canary judged by a pass (the service not yet watching) is
// followed by another.
func (s *seedEvents) settle(t *testing.T) {
	t.Helper()
	for range 3 {
		name := fmt.Sprintf("%s%d.tar", canaryPrefix, canaries.Add(1))
		dropIn(t, s.seeds, name, []byte("a settle canary, no image archive\n"))
		var verdict seeddir.Event
		s.wait(t, importWait, "canary "+name+" judged", func(evs []seeddir.Event) error {
			for _, e := range evs {
				if e.Seed != name {
					continue
				}
				switch e.Kind {
				case seeddir.Skipped:
					verdict = e
					if e.Pass == seeddir.PassWatch {
						return nil
					}
				case seeddir.Imported, seeddir.Failed:
					return fmt.Errorf("canary %s: %s", name, e.Kind)
				}
			}
			if verdict.Kind != "" {
				return nil // judged by a pass: another canary
			}
			return fmt.Errorf("no verdict on canary %s:\n%s", name, describe(evs))
		})
		if verdict.Why != "not an image archive" {
			t.Fatalf("canary %s skipped because %q, want: not an image archive", name, verdict.Why)
		}
		if verdict.Pass == seeddir.PassWatch {
			return
		}
	}
	t.Fatalf("three canaries judged by passes over the seeds dir, none by its watch")
}
