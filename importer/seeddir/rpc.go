package seeddir

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/rpc"
)

// HandleImport serves `ctr-seed import --in-daemon`: the seeds named by
// the request are read from this node's disk and imported by this process
// into the caller's namespace, with the caller's options.
func (s *Service) HandleImport(ctx context.Context, req rpc.Request) ([]importer.ImageResult, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	ctx = namespaces.WithNamespace(ctx, ns)
	// The spool (dir and cap) is the daemon's: its disk, its config.
	fopts := append([]fetcher.Opt(nil), s.fopts...)
	if req.Options.NoUnpack {
		fopts = append(fopts, fetcher.WithLayerLimits(0, 0))
	} else {
		fopts = append(fopts, fetcher.WithLayerLimits(req.MaxLayerRatio, fetcher.DefaultMinExpansionAllowance),
			fetcher.WithMaxLayerBytes(req.MaxLayerBytes))
	}
	var seeds fetcher.Seeds
	defer func() { seeds.Close() }()
	for _, p := range req.Seeds {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("seed %s: not an absolute path: %w", p, errdefs.ErrInvalidArgument)
		}
		seed, err := fetcher.Open(ctx, p, fopts...)
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, seed)
	}
	log.G(ctx).WithField("seeds", req.Seeds).WithField("namespace", ns).Info("importing seeds for a client")
	return importer.New(s.client, req.Options).Import(ctx, seeds)
}
