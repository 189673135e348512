package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/urfave/cli/v3"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list the images in seeds",
		ArgsUsage: "SEED...",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only image names"},
		}, spoolFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "seed"); err != nil {
				return err
			}
			return ls(ctx, cmd)
		},
	}
}

func ls(ctx context.Context, cmd *cli.Command) error {
	quiet := cmd.Bool("quiet")
	opts, err := spoolOptions(cmd)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.Root().Writer, 1, 8, 1, ' ', 0)
	if !quiet {
		fmt.Fprintln(tw, "SEED\tNAME\tDIGEST\tTYPE\tPLATFORMS\tSIZE\tSIGNATURES\tREFERRERS")
	}
	var failed error
	for _, path := range cmd.Args().Slice() {
		if err := lsSeed(ctx, tw, path, quiet, opts); err != nil {
			tw.Flush()
			fmt.Fprintf(cmd.Root().ErrWriter, "ctr-seed: %s\n", oneLine(err))
			failed = cli.Exit("", 1)
		}
	}
	tw.Flush()
	return failed
}

func lsSeed(ctx context.Context, tw *tabwriter.Writer, path string, quiet bool, opts []fetcher.Opt) error {
	s, err := fetcher.Open(ctx, path, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	imgs, err := s.Images(ctx)
	if err != nil {
		return err
	}
	var bad error
	for _, img := range imgs {
		if ctx.Err() != nil {
			// SIGTERM or SIGINT: a seed of thousands of images is not
			// listed to its end first.
			return fmt.Errorf("seed %s: %w", path, context.Cause(ctx))
		}
		if img.Err != nil {
			bad = errors.Join(bad, img.Err)
			continue
		}
		name := img.Name
		if name == "" {
			name = "<none>@" + img.Target.Digest.String() // imported under its digest
		}
		if quiet {
			fmt.Fprintln(tw, name)
			continue
		}
		ps, err := fetcher.Platforms(ctx, s, img.Target)
		if err != nil {
			return fmt.Errorf("seed %s: image %s: platforms: %w", path, name, err)
		}
		size, err := fetcher.Size(ctx, s, img.Target)
		if err != nil {
			return fmt.Errorf("seed %s: image %s: size: %w", path, name, err)
		}
		mt := fetcher.Escape(img.Target.MediaType)
		if img.Target.Annotations[fetcher.AnnotationDeltaOmitted] != "" {
			mt += " (delta)" // some layers are left out: the node must hold them
		}
		if fetcher.IsCosignArtifact(img.Target) {
			mt += " (" + fetcher.Escape(img.Target.Annotations[fetcher.AnnotationCosignKind]) + ")" // not imported as an image
		}
		sigs := "-\t-" // an entry that is itself signatures
		if !fetcher.IsCosignArtifact(img.Target) {
			ss, err := s.Signatures(ctx, img.Target.Digest)
			if err != nil {
				return fmt.Errorf("seed %s: image %s: signatures: %w", path, name, err)
			}
			refs, err := s.Referrers(ctx, img.Target.Digest)
			if err != nil {
				return fmt.Errorf("seed %s: image %s: referrers: %w", path, name, err)
			}
			sigs = fmt.Sprintf("%d\t%d", len(ss), len(refs))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", path, name, img.Target.Digest, mt,
			fetcher.FormatPlatforms(ps), progress.Bytes(size), sigs)
	}
	return bad
}
