package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/rpc"
	"github.com/urfave/cli/v3"
	"google.golang.org/grpc"
)

// runImportInDaemon hands the import to containerd-seed's import service:
// the daemon opens the seeds (paths on this node) and imports them in its
// own process. Progress is not streamed; each image's line comes at the end.
func runImportInDaemon(ctx context.Context, cmd *cli.Command, opts importer.Options) error {
	if _, err := spoolOptions(cmd); err != nil {
		return err // flag checks; the daemon's own spool settings apply
	}
	var seeds []string
	for _, p := range append(cmd.StringSlice("input"), cmd.Args().Slice()...) {
		if p == "-" {
			return usageError{fmt.Errorf("--in-daemon reads seeds from the node's disk: it cannot take stdin (-)")}
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("seed %s: %w", p, err)
		}
		seeds = append(seeds, abs)
	}
	c, ctx, err := newClient(ctx, cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	conn, ok := c.Conn().(*grpc.ClientConn)
	if !ok {
		return fmt.Errorf("--in-daemon needs a gRPC connection to containerd")
	}
	out := newOutput(cmd)
	defer out.Close()
	results, err := rpc.Import(ctx, conn, seeds, opts)
	for _, r := range results {
		out.ImageDone(r)
	}
	return err
}
