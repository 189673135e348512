package main

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/urfave/cli/v3"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check every blob, reference and layer diffID of seeds",
		ArgsUsage: "SEED...",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only problems"},
			&cli.BoolFlag{Name: "node", Usage: "for a delta seed, also check that the containerd at -a holds every blob it left out"},
		}, layerLimitFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "seed"); err != nil {
				return err
			}
			opts, err := spoolOptions(cmd)
			if err != nil {
				return err
			}
			limits, err := layerLimits(cmd)
			if err != nil {
				return err
			}
			bad := 0
			for _, path := range cmd.Args().Slice() {
				bad += verifySeed(ctx, cmd, path, limits, opts)
			}
			if bad > 0 {
				return cli.Exit(fmt.Sprintf("%d problem(s) found", bad), 1)
			}
			return nil
		},
	}
}

func verifySeed(ctx context.Context, cmd *cli.Command, path string, limits layerlimit.Limits, opts []fetcher.Opt) int {
	errw := cmd.Root().ErrWriter
	s, err := fetcher.Open(ctx, path, opts...)
	if err != nil {
		fmt.Fprintf(errw, "%s\n", oneLine(err))
		return 1
	}
	defer s.Close()
	problems := s.Verify(ctx, limits)
	if cmd.Bool("node") {
		problems = append(problems, nodeLacks(ctx, cmd, s)...)
	}
	for _, p := range problems {
		fmt.Fprintf(errw, "%s\n", oneLine(p))
	}
	if len(problems) == 0 && !cmd.Bool("quiet") {
		if n, delta := s.Delta(ctx); delta {
			fmt.Fprintf(cmd.Root().Writer, "seed %s: ok (%s, a delta seed: %d layers left out, expected on the node)\n", path, s.Format(), n)
		} else {
			fmt.Fprintf(cmd.Root().Writer, "seed %s: ok (%s)\n", path, s.Format())
		}
	}
	return len(problems)
}

// nodeLacks lists, as problems, the blobs a delta seed left out that the
// node's content store (any namespace: content is shared) does not hold.
func nodeLacks(ctx context.Context, cmd *cli.Command, s *fetcher.Seed) []error {
	omitted := s.Omitted(ctx)
	if len(omitted) == 0 {
		return nil
	}
	c, ctx, err := newClient(ctx, cmd)
	if err != nil {
		return []error{err}
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return []error{fmt.Errorf("listing namespaces: %w", err)}
	}
	var problems []error
	for _, d := range omitted {
		held := false
		for _, ns := range nss {
			if _, err := c.ContentStore().Info(namespaces.WithNamespace(ctx, ns), d); err == nil {
				held = true
				break
			}
		}
		if !held {
			problems = append(problems, fmt.Errorf("seed %s: blob %s: left out of this delta seed, and not on this node", s.Path(), d))
		}
	}
	return problems
}
