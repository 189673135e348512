package main

import (
	"context"
	"fmt"

	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/urfave/cli/v3"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import every image of seeds into containerd, verified and unpacked",
		ArgsUsage: "[flags] SEED...",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "base-name", Usage: "base image name for tag-only names; when set, only images with this prefix are named"},
			&cli.BoolFlag{Name: "digests", Usage: "also create <base-name>@<digest> images"},
			&cli.BoolFlag{Name: "skip-digest-for-named", Usage: "with --digests, skip digest images for images that got a name"},
			&cli.StringFlag{Name: "index-name", Usage: "image name to keep each seed's index as"},
			&cli.BoolFlag{Name: "skip-missing", Usage: "tolerate manifests absent from the seed for platforms not unpacked"},
		}, commonImportFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "seed"); err != nil {
				return err
			}
			if cmd.Bool("skip-digest-for-named") && !cmd.Bool("digests") {
				return usageError{fmt.Errorf("--skip-digest-for-named must be used with --digests")}
			}
			opts, err := importOptions(cmd)
			if err != nil {
				return err
			}
			opts.BaseName, opts.Digests = cmd.String("base-name"), cmd.Bool("digests")
			opts.SkipDigestForNamed, opts.IndexName = cmd.Bool("skip-digest-for-named"), cmd.String("index-name")
			opts.SkipMissing = cmd.Bool("skip-missing")
			return runImport(ctx, cmd, opts)
		},
	}
}

// importOptions reads the flags import and pull share.
func importOptions(cmd *cli.Command) (importer.Options, error) {
	ps, err := parsePlatforms(cmd.StringSlice("platform"))
	if err != nil {
		return importer.Options{}, err
	}
	labels, err := parseLabels(cmd.StringSlice("label"))
	if err != nil {
		return importer.Options{}, err
	}
	return importer.Options{
		Snapshotter:  cmd.String("snapshotter"),
		NoUnpack:     cmd.Bool("no-unpack"),
		Platforms:    ps,
		AllPlatforms: cmd.Bool("all-platforms"),
		Labels:       labels,
		Pin:          cmd.Bool("pin"),
	}, nil
}

func runImport(ctx context.Context, cmd *cli.Command, opts importer.Options) error {
	seeds, err := openSeeds(ctx, cmd.Args().Slice())
	if err != nil {
		return err
	}
	defer seeds.Close()
	c, ctx, err := newClient(ctx, cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	out := newOutput(cmd)
	opts.Observer = out
	_, err = importer.New(c, opts).Import(ctx, seeds)
	out.Close()
	return err
}

func openSeeds(ctx context.Context, paths []string) (fetcher.Seeds, error) {
	var seeds fetcher.Seeds
	for _, p := range paths {
		s, err := fetcher.Open(ctx, p)
		if err != nil {
			seeds.Close()
			return nil, err
		}
		seeds = append(seeds, s)
	}
	return seeds, nil
}
