package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/urfave/cli/v3"
)

// versionCommand prints the client's version and, when the daemon can be
// reached, the server's, as `ctr version` does.
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the client and server versions",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 0 {
				return usageError{fmt.Errorf("version takes no arguments")}
			}
			w := cmd.Root().Writer
			fmt.Fprintf(w, "Client:\n  Version:  %s\n  Go version: %s\n\n", version, runtime.Version())
			c, ctx, err := newClient(ctx, cmd)
			if err != nil {
				fmt.Fprintf(w, "Server:\n  (not reachable: %s)\n", oneLine(err))
				return nil
			}
			defer c.Close()
			v, err := c.Version(ctx)
			if err != nil {
				fmt.Fprintf(w, "Server:\n  (not reachable: %s)\n", oneLine(err))
				return nil
			}
			fmt.Fprintf(w, "Server:\n  Version:  %s\n", v.Version)
			if v.Revision != "" {
				fmt.Fprintf(w, "  Revision: %s\n", v.Revision)
			}
			return nil
		},
	}
}
