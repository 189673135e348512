package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer/seeddir"
	"github.com/urfave/cli/v3"
)

// serveCommand is the plugin's job as a sidecar for an unmodified
// containerd: same config keys, same code path, over the socket.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "import a seeds directory at start and watch it (the containerd-seed plugin, as a sidecar)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/ctr-seed/config.toml",
				Usage: "TOML with the plugin's keys (seeds_dir, namespace, snapshotter, platforms, unpack, pin, watch, labels, max_spool_bytes, max_layer_ratio, max_layer_bytes)"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/ctr-seed", Usage: "where imported seed versions are remembered"},
			&cli.BoolFlag{Name: "once", Usage: "import the seeds dir once and exit (no watch)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 0 {
				return usageError{fmt.Errorf("serve takes no arguments (got %q): the seeds dir is the config's seeds_dir", cmd.Args().Slice())}
			}
			// Any config problem, a missing file too, is a usage error (2).
			cfg, err := seeddir.LoadConfig(cmd.String("config"))
			if err != nil {
				return usageError{err}
			}
			// What the file's keys say (key files readable, a known
			// platform, ...) is checked before containerd is asked
			// anything: a config the service cannot run with is a usage
			// error too, never "a seed failed" (1).
			set, err := cfg.Settings()
			if err != nil {
				return usageError{fmt.Errorf("config %s: %w", cmd.String("config"), err)}
			}
			if cmd.Bool("once") {
				set.Watch = false
			}
			if cmd.IsSet("namespace") {
				set.Namespace = cmd.String("namespace") // -n, $CONTAINERD_NAMESPACE over the file
			}
			if err := os.MkdirAll(cmd.String("state-dir"), 0o700); err != nil {
				return err
			}
			log.L.Logger.SetOutput(os.Stderr) // a service logs (see the root's Before)
			c, ctx, err := newClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			// Each seed's events go to containerd's event service, as
			// the plugin's do.
			svc, err := seeddir.New(c, set, cmd.String("state-dir"), seeddir.WithObserver(seeddir.Publish(c.EventService())))
			if err != nil {
				return err
			}
			log.G(ctx).WithField("seeds_dir", set.SeedsDir).WithField("namespace", set.Namespace).Info("ctr-seed serve started")
			return svc.Run(ctx)
		},
	}
}
