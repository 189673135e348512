// Package rpc is the small gRPC service through which `ctr-seed import
// --in-daemon` asks containerd-seed to import seeds itself: the daemon
// reads the seed from the node's disk, writes its own content store and
// applies layers in its own process, and no blob crosses the socket.
//
// The method is /ctrseed.v1.Importer/Import; its messages are versioned
// JSON (wire.go) in a google.protobuf.BytesValue, so the service needs no
// generated code. The server (server.go) and the client (Import) are both
// here.
package rpc

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/ctr-seed/ctr-seed/importer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	serviceName = "ctrseed.v1.Importer"
	importPath  = "/" + serviceName + "/Import"
)

// Import asks the daemon behind conn (a containerd client's connection,
// which carries the namespace) to import seeds (absolute paths on its
// node) with opts, and returns each image's outcome; like
// importer.Import, the error is an *importer.FailedError when images
// failed.
func Import(ctx context.Context, conn *grpc.ClientConn, seeds []string, opts importer.Options) ([]importer.ImageResult, error) {
	b, err := encodeRequest(seeds, opts)
	if err != nil {
		return nil, err
	}
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, importPath, wrapperspb.Bytes(b), out); err != nil {
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("import in the daemon: it has no %s service (a stock containerd, not containerd-seed?): %w", serviceName, errgrpc.ToNative(err))
		}
		return nil, fmt.Errorf("import in the daemon: %w", errgrpc.ToNative(err))
	}
	results, err := decodeReply(out.Value)
	if err != nil {
		return nil, fmt.Errorf("import in the daemon: reply: %w", err)
	}
	return results, importer.Summarize(results).Err()
}
