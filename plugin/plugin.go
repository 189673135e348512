// Package plugin registers ctr-seed's importer as a containerd plugin
// (io.containerd.seed.v1.importer) and its --in-daemon import service
// (io.containerd.grpc.v1.seed). It only reads its config section and hands
// containerd's in-process services to the seeds-directory service
// (importer/seeddir) and the import service (importer/rpc); the logic
// lives there and in fetcher/.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	cplugin "github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/rpc"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
)

// Type and ID make the config section [plugins."io.containerd.seed.v1.importer"]
// (seeddir.PluginSection).
const (
	Type cplugin.Type = "io.containerd.seed.v1"
	ID                = "importer"
)

// Config is the plugin's config section; see config.toml at the repo root.
type Config = seeddir.Config

// stopGrace bounds how long Close waits for an import to stop: the
// importer's cleanup (deleting its lease) takes well under it.
const stopGrace = 30 * time.Second

func init() {
	// The section is decoded into a table, not into Config: decoding into
	// a struct, containerd only warns of a key the struct lacks, and a
	// misspelt verify_keys would import every seed unverified. initFn
	// reads the table as serve reads its file, unknown keys refused.
	cfg := seeddir.DefaultTable()
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

// instance is the running plugin: the seeds-directory service in the
// background, and the import service the gRPC plugin registers.
type instance struct {
	imports *rpc.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

func initFn(ic *cplugin.InitContext) (any, error) {
	table, ok := ic.Config.(*map[string]any)
	if !ok {
		return nil, fmt.Errorf("seed importer: config is %T, want a table", ic.Config)
	}
	lg := log.G(ic.Context).WithField("plugin", string(Type)+"."+ID)
	cfg, err := seeddir.ConfigFromTable(*table)
	var set seeddir.Settings
	if err == nil {
		set, err = cfg.Settings() // key files, platforms, caps: read and checked once, now
	}
	if err != nil {
		// Fail closed: no seed is imported with a config that says
		// something else than what was meant.
		err = fmt.Errorf("seed importer: config [plugins.%q]: %w", seeddir.PluginSection, err)
		lg.WithError(err).Error("seed importer not started: no seed is imported until the config is fixed")
		return nil, err
	}
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
	// What happens to each seed is published on containerd's event
	// service (/ctr-seed/seed/...): `ctr events` shows it.
	svc, err := seeddir.New(c, set, root, seeddir.WithObserver(seeddir.Publish(c.EventService())))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("seed importer: %w", err)
	}
	// Import in the background: containerd finishes starting (and serves
	// CRI) while seeds are read; images appear as each one lands. The
	// work runs until containerd closes the plugin at shutdown.
	ctx, cancel := context.WithCancel(log.WithLogger(context.Background(), lg))
	p := &instance{imports: rpc.NewServer(importer.FromClient(c), svc.SeedOptions()...), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if err := svc.Run(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, seeddir.ErrSeedsFailed) {
			log.G(ctx).WithError(err).Error("seed importer stopped")
		}
	}()
	return p, nil
}

// Close stops the seeds-directory service and waits for it: an import
// under way is cancelled and cleans up (its lease goes, nothing half-done
// is recorded). containerd calls it at shutdown.
func (p *instance) Close() error {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		return fmt.Errorf("seed importer: still stopping after %s", stopGrace)
	}
	return nil
}
