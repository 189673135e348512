package plugin

import (
	"fmt"

	"github.com/containerd/containerd/v2/plugins"
	cplugin "github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/ctr-seed/ctr-seed/importer/rpc"
	"google.golang.org/grpc"
)

// The gRPC face of the importer, for `ctr-seed import --in-daemon`:
// [plugins."io.containerd.grpc.v1.seed"] (no config).
func init() {
	registry.Register(&cplugin.Registration{
		Type:     plugins.GRPCPlugin,
		ID:       "seed",
		Requires: []cplugin.Type{Type},
		InitFn: func(ic *cplugin.InitContext) (any, error) {
			p, err := ic.GetByID(Type, ID)
			if err != nil {
				return nil, fmt.Errorf("seed import service: %w", err)
			}
			inst, ok := p.(*instance)
			if !ok {
				return nil, fmt.Errorf("seed import service: plugin %s.%s is %T", Type, ID, p)
			}
			return grpcService{inst.imports}, nil
		},
	})
}

type grpcService struct{ imports *rpc.Server }

// Register is how containerd's gRPC server takes a plugin's service.
func (g grpcService) Register(s *grpc.Server) error {
	g.imports.Register(s)
	return nil
}
