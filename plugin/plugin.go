// Package plugin registers ctr-seed's importer as a containerd plugin
// (io.containerd.seed.v1.importer). It only reads its config section and
// hands containerd's in-process services to the seed directory service;
// the logic lives in importer/ and fetcher/.
package plugin

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	cplugin "github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
)

// Type and ID make the config section [plugins."io.containerd.seed.v1.importer"].
const (
	Type cplugin.Type = "io.containerd.seed.v1"
	ID                = "importer"
)

// Config is the plugin's config section; see config.toml at the repo root.
type Config = seeddir.Config

func init() {
	cfg := seeddir.DefaultConfig()
	registry.Register(&cplugin.Registration{
		Type:   Type,
		ID:     ID,
		Config: &cfg,
		// What client.WithInMemoryServices needs.
		Requires: []cplugin.Type{
			plugins.EventPlugin,
			plugins.LeasePlugin,
			plugins.SandboxStorePlugin,
			plugins.TransferPlugin,
			plugins.MountManagerPlugin,
			plugins.ServicePlugin,
		},
		InitFn: initFn,
	})
}

func initFn(ic *cplugin.InitContext) (any, error) {
	cfg := *ic.Config.(*Config)
	root := ic.Properties[plugins.PropertyRootDir]
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, err
	}
	ic.Meta.Exports["seeds_dir"] = cfg.SeedsDir
	ic.Meta.Exports["namespace"] = cfg.Namespace
	c, err := client.New("", client.WithInMemoryServices(ic), client.WithDefaultNamespace(cfg.Namespace))
	if err != nil {
		return nil, fmt.Errorf("seed importer: in-process client: %w", err)
	}
	svc, err := seeddir.New(c, cfg, root)
	if err != nil {
		return nil, fmt.Errorf("seed importer: %w", err)
	}
	// Import in the background: containerd finishes starting (and serves
	// CRI) while seeds are read; images appear as each one lands.
	ctx := log.WithLogger(context.Background(), log.G(ic.Context).WithField("plugin", string(Type)+"."+ID))
	go func() {
		if err := svc.Run(ctx); err != nil {
			log.G(ctx).WithError(err).Error("seed importer stopped")
		}
	}()
	return svc, nil
}
