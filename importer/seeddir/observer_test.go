package seeddir

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
)

type publishFunc func(ctx context.Context, topic string, event events.Event) error

func (f publishFunc) Publish(ctx context.Context, topic string, event events.Event) error {
	return f(ctx, topic, event)
}

// Publish puts each event under its kind's topic, as JSON a subscriber
// decodes back into the same Event; a failure to publish is no failure
// of the import.
func TestPublish(t *testing.T) {
	var topics []string
	var got []Event
	o := Publish(publishFunc(func(_ context.Context, topic string, ev events.Event) error {
		a, err := typeurl.MarshalAny(ev)
		if err != nil {
			return err
		}
		v, err := typeurl.UnmarshalAny(a)
		if err != nil {
			return err
		}
		topics = append(topics, topic)
		got = append(got, *v.(*Event))
		return nil
	}))
	ctx := withPass(context.Background(), PassBoot)
	want := []Event{
		{Kind: Seen, Seed: "a.tar", Pass: PassBoot},
		{Kind: Imported, Seed: "a.tar", Pass: PassBoot, Images: []string{"example.com/a:1"}},
		{Kind: Failed, Seed: "b.tar", Pass: PassBoot, Error: "seed b.tar: blob sha256:x: digest mismatch"},
	}
	for _, e := range want {
		o.Observe(ctx, e)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
	if w := []string{"/ctr-seed/seed/seen", "/ctr-seed/seed/imported", "/ctr-seed/seed/failed"}; !reflect.DeepEqual(topics, w) {
		t.Errorf("topics %v, want %v", topics, w)
	}
	Publish(publishFunc(func(context.Context, string, events.Event) error { return errors.New("daemon gone") })).Observe(ctx, want[0])

	if p := passOf(context.Background()); p != PassWatch {
		t.Errorf("pass outside any pass: %q, want %q", p, PassWatch)
	}
	if e := seedEvent(withPass(context.Background(), PassRescan), Skipped, "c.tar"); !reflect.DeepEqual(e, Event{Kind: Skipped, Seed: "c.tar", Pass: PassRescan}) {
		t.Errorf("seedEvent: %+v", e)
	}
}
