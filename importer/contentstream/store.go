// Package contentstream writes blobs into containerd's content service
// from a client (the CLI), faster than containerd's proxy writer.
//
// containerd's own proxy writer sends a chunk and waits for its reply
// before it reads the next one, so the client (read, hash, marshal) and
// the daemon (unmarshal, hash, write) take turns on every MiB: one of two
// cores idles. Here the chunks stream as fast as gRPC's flow control lets
// them, and a receiver checks each reply's offset as it comes. Everything
// else (the ref's lock, the expected digest checked at commit, resuming an
// ingest) is the daemon's, exactly as for the proxy's writer.
//
// A big blob, when this process can reach the daemon's content store
// (same node, root), skips the stream altogether: its bytes go into the
// daemon's own ingest file (see direct.go).
package contentstream

import (
	"context"
	"errors"
	"fmt"
	"io"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Store is a content store whose writers stream; the rest is inner's.
type Store struct {
	content.Store
	api        contentapi.ContentClient
	root       contentRoot
	streamOnly bool
}

// Opt configures a Store.
type Opt func(*Store)

// StreamOnly makes every blob stream over gRPC, even one this process
// could write into the daemon's ingest file (see direct).
func StreamOnly() Opt {
	return func(s *Store) { s.streamOnly = true }
}

// New returns inner with streaming writers when conn is a gRPC
// connection to containerd (the client's Conn()); inner as it is
// otherwise (in memory services, ttrpc).
func New(inner content.Store, conn any, opts ...Opt) content.Store {
	cc, ok := conn.(*grpc.ClientConn) // nil in memory: the client's field is typed
	if !ok || cc == nil {
		return inner
	}
	s := &Store{Store: inner, api: contentapi.NewContentClient(cc), root: contentRoot{api: introspectionapi.NewIntrospectionClient(cc)}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Writer opens a write session for the ref, as the proxy's does: the
// first message declares ref, size and digest, and its reply tells where
// an earlier ingest of the ref stopped.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if wo.Desc.Size >= directMin && !s.streamOnly {
		if w, err := s.direct(ctx, wo); w != nil || err != nil {
			return w, err
		}
	}
	w, err := s.open(ctx, wo.Ref, wo.Desc)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// open starts a write session for ref.
func (s *Store) open(ctx context.Context, ref string, desc ocispec.Descriptor) (*writer, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := s.api.Write(sctx)
	if err != nil {
		cancel()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("writing %s: %w", ref, cerr)
		}
		// No stream: the daemon is unreachable. That is not the
		// "unavailable" of a ref another writer holds, which
		// content.OpenWriter waits out: it would retry for as long as
		// the daemon stays down.
		return nil, fmt.Errorf("content service unreachable: %s", status.Convert(err).Message())
	}
	if err := stream.Send(&contentapi.WriteContentRequest{
		Action:   contentapi.WriteAction_STAT,
		Ref:      ref,
		Total:    desc.Size,
		Expected: desc.Digest.String(),
	}); err != nil {
		if errors.Is(err, io.EOF) { // the daemon ended the stream: Recv has its status
			_, err = stream.Recv()
		}
		cancel()
		return nil, errgrpc.ToNative(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, errgrpc.ToNative(err)
	}
	return newWriter(ref, stream, cancel, resp), nil
}
