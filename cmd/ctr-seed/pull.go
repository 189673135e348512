package main

import (
	"context"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/urfave/cli/v3"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "pull images, taking every blob a seed holds from the seed and only the rest from the registry",
		ArgsUsage: "[flags] REF...",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "seed", Usage: "seed to serve blobs from (repeatable)"},
		}, append(append(registryFlags(), verifyFlags()...), commonImportFlags()...)...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "reference"); err != nil {
				return err
			}
			opts, err := importOptions(cmd)
			if err != nil {
				return err
			}
			return runPull(ctx, cmd, opts)
		},
	}
}

func runPull(ctx context.Context, cmd *cli.Command, opts importer.Options) error {
	remote, err := registryResolver(ctx, cmd)
	if err != nil {
		return err
	}
	sess, ctx, err := openSession(ctx, cmd, cmd.StringSlice("seed"), &opts)
	if err != nil {
		return err
	}
	defer sess.Close()
	im, err := importer.New(importer.FromClient(sess.client), opts)
	if err != nil {
		return err
	}
	r := fetcher.NewResolver(sess.seeds, remote)
	var results []importer.ImageResult
	for _, ref := range cmd.Args().Slice() {
		res, _ := im.Pull(ctx, r, ref) // res.Err says it, and was printed
		results = append(results, res)
	}
	return importer.Summarize(results).Err()
}

// registryFlags say how to reach registries, for pull and save.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "hosts-dir", Usage: "containerd hosts directory (hosts.toml per registry)"},
		&cli.BoolFlag{Name: "plain-http", Usage: "allow connections using plain HTTP"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:password] registry user and password"},
		&cli.BoolFlag{Name: "offline", Usage: "never contact a registry: everything must come from seeds (or containerd)"},
	}
}

// registryResolver is the registry the flags name; nil with --offline.
func registryResolver(ctx context.Context, cmd *cli.Command) (remotes.Resolver, error) {
	if cmd.Bool("offline") {
		return nil, nil
	}
	return fetcher.NewRegistryResolver(ctx, fetcher.RegistryOptions{
		HostsDir: cmd.String("hosts-dir"), PlainHTTP: cmd.Bool("plain-http"), User: cmd.String("user"),
	})
}
