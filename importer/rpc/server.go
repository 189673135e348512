package rpc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Server imports, in the daemon's process, the seeds a client names.
type Server struct {
	svc   importer.Services
	fopts []fetcher.Opt
}

// NewServer serves imports through svc (the daemon's own, in process;
// their Limiter bounds every request together, and whatever else shares
// it); every seed is opened with fopts: the daemon's spool dir and cap,
// not the caller's.
func NewServer(svc importer.Services, fopts ...fetcher.Opt) *Server {
	return &Server{svc: svc, fopts: fopts}
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Import",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.BytesValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				b, err := s.serve(ctx, in.Value)
				if err != nil {
					return nil, errgrpc.ToGRPC(err)
				}
				return wrapperspb.Bytes(b), nil
			},
		}},
	}, nil)
}

// serve decodes one request, imports, and encodes the reply.
func (s *Server) serve(ctx context.Context, req []byte) ([]byte, error) {
	seeds, opts, err := decodeRequest(req)
	if err != nil {
		return nil, err
	}
	results, err := s.Import(ctx, seeds, opts)
	if err != nil && !errors.Is(err, importer.ErrImagesFailed) {
		return nil, err
	}
	return encodeReply(results)
}

// Import opens the seeds (absolute paths on this node) and imports them
// into the caller's namespace with opts, as the CLI does
// (importer.ImportPaths): a seed that does not open is a failed result.
func (s *Server) Import(ctx context.Context, paths []string, opts importer.Options) ([]importer.ImageResult, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	ctx = namespaces.WithNamespace(ctx, ns)
	im, err := importer.New(s.svc, opts)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("seed %s: not an absolute path: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	log.G(ctx).WithField("seeds", paths).WithField("namespace", ns).Info("importing seeds for a client")
	return im.ImportPaths(ctx, paths, s.fopts...)
}
