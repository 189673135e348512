// Package rpc is the small gRPC service through which `ctr-seed import
// --in-daemon` asks containerd-seed to import seeds itself: the daemon
// reads the seed from the node's disk, writes its own content store and
// applies layers in its own process, and no blob crosses the socket.
//
// Messages are JSON in a google.protobuf.BytesValue, so the service needs
// no generated code; the method is /ctrseed.v1.Importer/Import.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/ctr-seed/ctr-seed/importer"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	serviceName = "ctrseed.v1.Importer"
	importPath  = "/" + serviceName + "/Import"
)

// Request asks for an import of seeds (absolute paths on the daemon's
// node) into the caller's namespace.
type Request struct {
	Seeds         []string
	Options       importer.Options // Observer is not sent
	MaxLayerRatio int
	MaxLayerBytes int64
}

// Image is one image's outcome.
type Image struct {
	Seed         string
	Names        []string
	Target       digest.Digest
	MediaType    string
	FromSeed     int64
	FromRegistry int64
	Duration     time.Duration
	Err          string
}

// Response lists every image's outcome.
type Response struct {
	Images []Image
}

// Handler serves one request in the daemon.
type Handler func(ctx context.Context, req Request) ([]importer.ImageResult, error)

// Register adds the service to a gRPC server.
func Register(s *grpc.Server, h Handler) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Import",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				var req Request
				if err := json.Unmarshal(in.Value, &req); err != nil {
					return nil, errgrpc.ToGRPC(fmt.Errorf("ctr-seed import request: %w", err))
				}
				results, err := h(ctx, req)
				if err != nil && !errors.Is(err, importer.ErrImagesFailed) {
					return nil, errgrpc.ToGRPC(err)
				}
				var resp Response
				for _, r := range results {
					im := Image{Seed: r.Seed, Names: r.Names, Target: r.Target, MediaType: r.MediaType,
						FromSeed: r.FromSeed, FromRegistry: r.FromRegistry, Duration: r.Duration}
					if r.Err != nil {
						im.Err = r.Err.Error()
					}
					resp.Images = append(resp.Images, im)
				}
				b, err := json.Marshal(resp)
				if err != nil {
					return nil, errgrpc.ToGRPC(err)
				}
				return wrapperspb.Bytes(b), nil
			},
		}},
	}, nil)
}

// Import sends req over conn (a containerd client's connection, which
// carries the namespace) and returns each image's outcome; like
// importer.Import, the error is an *importer.FailedError when images
// failed.
func Import(ctx context.Context, conn *grpc.ClientConn, req Request) ([]importer.ImageResult, error) {
	req.Options.Observer = nil
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, importPath, wrapperspb.Bytes(b), out); err != nil {
		return nil, fmt.Errorf("import in the daemon (is it containerd-seed?): %w", errgrpc.ToNative(err))
	}
	var resp Response
	if err := json.Unmarshal(out.Value, &resp); err != nil {
		return nil, fmt.Errorf("import in the daemon: reply: %w", err)
	}
	var results []importer.ImageResult
	failed := 0
	for _, im := range resp.Images {
		r := importer.ImageResult{Seed: im.Seed, Names: im.Names, Target: im.Target, MediaType: im.MediaType,
			FromSeed: im.FromSeed, FromRegistry: im.FromRegistry, Duration: im.Duration}
		if im.Err != "" {
			r.Err = errors.New(im.Err)
			failed++
		}
		results = append(results, r)
	}
	if failed > 0 {
		return results, &importer.FailedError{Failed: failed, Total: len(results)}
	}
	return results, nil
}
