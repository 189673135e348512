package contentstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs/pkg/errgrpc"
	digest "github.com/opencontainers/go-digest"
)

// maxChunk is the largest write one message carries, the proxy's bound.
const maxChunk = defaults.DefaultMaxSendMsgSize >> 1

// inFlight bounds the requests sent and not yet answered (at most 1 MiB
// each from content.Copy). 4, 8 and 32 measured the same in time and in
// peak RSS: gRPC's flow control is what bounds the bytes in flight.
const inFlight = 8

// writer streams one ref's writes. Write, Status, Truncate, Commit and
// Close are called by one goroutine (content.Copy's), as for any
// content.Writer; the receiver reads the daemon's replies beside it.
type writer struct {
	ref    string
	stream contentapi.Content_WriteClient
	cancel context.CancelFunc
	offset int64 // where the next write starts

	queue chan sent     // requests awaiting their reply, in order
	done  chan struct{} // closed when the receiver ends; err is set before
	close sync.Once

	mu     sync.Mutex
	err    error
	digest digest.Digest
}

// sent is a request the daemon is to answer: a write's reply must report
// offset; a stat's or commit's is handed back on reply.
type sent struct {
	offset int64
	reply  chan *contentapi.WriteContentResponse
}

func newWriter(ref string, stream contentapi.Content_WriteClient, cancel context.CancelFunc, first *contentapi.WriteContentResponse) *writer {
	w := &writer{ref: ref, stream: stream, cancel: cancel, offset: first.Offset,
		digest: digest.Digest(first.Digest),
		queue:  make(chan sent, inFlight), done: make(chan struct{})}
	go w.receive()
	return w
}

// receive matches the daemon's replies to the requests, in order, until
// the stream ends: a write the daemon took short fails the writer.
func (w *writer) receive() {
	defer close(w.done)
	for {
		resp, err := w.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) && len(w.queue) == 0 {
				err = nil
			} else if errors.Is(err, io.EOF) {
				err = fmt.Errorf("content service ended the write of %s with %d requests unanswered: %w", w.ref, len(w.queue), io.ErrUnexpectedEOF)
			}
			w.fail(err)
			return
		}
		if resp.Digest != "" {
			w.mu.Lock()
			w.digest = digest.Digest(resp.Digest)
			w.mu.Unlock()
		}
		var s sent
		select {
		case s = <-w.queue:
		default:
			w.fail(fmt.Errorf("content service answered a request of %s never sent", w.ref))
			return
		}
		if s.reply != nil {
			s.reply <- resp
			continue
		}
		if resp.Offset != s.offset {
			w.fail(fmt.Errorf("write of %s: content service is at offset %d, expected %d: %w", w.ref, resp.Offset, s.offset, io.ErrShortWrite))
			return
		}
	}
}

func (w *writer) fail(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = errgrpc.ToNative(err)
	}
}

func (w *writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// send queues what the reply to req must be matched with, then sends req.
func (w *writer) send(req *contentapi.WriteContentRequest, s sent) error {
	if err := w.failure(); err != nil {
		return err
	}
	select {
	case w.queue <- s:
	case <-w.done:
		return w.ended()
	}
	if err := w.stream.Send(req); err != nil {
		if errors.Is(err, io.EOF) { // the daemon ended the stream: Recv has its status
			<-w.done
			return w.ended()
		}
		return errgrpc.ToNative(err)
	}
	return nil
}

// ended is why the receiver stopped.
func (w *writer) ended() error {
	if err := w.failure(); err != nil {
		return err
	}
	return fmt.Errorf("content service ended the write of %s: %w", w.ref, io.ErrUnexpectedEOF)
}

// call sends req and waits for its reply: every earlier write is answered
// by then.
func (w *writer) call(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	reply := make(chan *contentapi.WriteContentResponse, 1)
	if err := w.send(req, sent{reply: reply}); err != nil {
		return nil, err
	}
	select {
	case resp := <-reply:
		return resp, nil
	case <-w.done:
		select {
		case resp := <-reply:
			return resp, nil
		default:
			return nil, w.ended()
		}
	}
}

// Write returns once its chunks are sent, before the daemon answers them:
// Send marshals a request into a buffer of gRPC's own, so the caller may
// reuse p at once (content.Copy does); a write the daemon took short fails
// a later call, Commit at the latest.
func (w *writer) Write(p []byte) (int, error) {
	n := 0
	for data := range slices.Chunk(p, maxChunk) {
		next := w.offset + int64(len(data))
		req := &contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Offset: w.offset, Data: data}
		if err := w.send(req, sent{offset: next}); err != nil {
			return n, fmt.Errorf("failed to send write: %w", err)
		}
		w.offset = next
		n += len(data)
	}
	return n, nil
}

func (w *writer) Status() (content.Status, error) {
	resp, err := w.call(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_STAT})
	if err != nil {
		return content.Status{}, fmt.Errorf("error getting writer status: %w", err)
	}
	return content.Status{
		Ref:       w.ref,
		Offset:    resp.Offset,
		Total:     resp.Total,
		StartedAt: protobuf.FromTimestamp(resp.StartedAt),
		UpdatedAt: protobuf.FromTimestamp(resp.UpdatedAt),
	}, nil
}

func (w *writer) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digest
}

// Truncate, as the proxy's: the daemon checks the offset at the next write.
func (w *writer) Truncate(size int64) error {
	w.offset = size
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) (err error) {
	defer func() {
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}()
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	resp, err := w.call(&contentapi.WriteContentRequest{
		Action:   contentapi.WriteAction_COMMIT,
		Total:    size,
		Offset:   w.offset,
		Expected: expected.String(),
		Labels:   base.Labels,
	})
	if err != nil {
		return fmt.Errorf("commit failed: %w", err)
	}
	if size != 0 && resp.Offset != size {
		return fmt.Errorf("unexpected size: %v != %v", resp.Offset, size)
	}
	if actual := digest.Digest(resp.Digest); expected != "" && actual != expected {
		return fmt.Errorf("unexpected digest: %v != %v", actual, expected)
	}
	w.offset = resp.Offset
	return nil
}

// Close ends the session: the daemon answers what it was sent, then sees
// the end of the stream, as after the proxy's CloseSend (an ingest not
// committed stays for a later write of the ref to resume).
func (w *writer) Close() error {
	var err error
	w.close.Do(func() {
		err = w.stream.CloseSend()
		<-w.done
		w.cancel()
	})
	return err
}
