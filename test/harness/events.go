package harness

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// EventTopics records the topics of the events containerd publishes in
// namespace ns (an image created or updated, a snapshot prepared or
// committed, content deleted) from now until the returned stop is called,
// which waits a little for events still on their way.
func EventTopics(t testing.TB, c *client.Client, ns string) (stop func() []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(NSContext(ns))
	envs, errs := c.EventService().Subscribe(ctx, fmt.Sprintf("namespace==%q", ns))
	topics := make(chan []string, 1)
	go func() {
		var got []string
		defer func() { topics <- got }()
		for {
			select {
			case e, ok := <-envs:
				if !ok {
					return
				}
				got = append(got, e.Topic)
			case <-errs:
				return
			}
		}
	}()
	// A subscription is live once the daemon has it; there is no
	// acknowledgement to wait for, so give it a moment.
	time.Sleep(100 * time.Millisecond)
	return func() []string {
		time.Sleep(300 * time.Millisecond)
		cancel()
		return <-topics
	}
}
