// Command ctr-seed lists, verifies and imports seeds (container image
// archives) for containerd nodes with little or no network.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/log"
	"github.com/urfave/cli/v3"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args))
}

// run executes the CLI and maps errors to exit codes: 2 for usage, 1 otherwise.
func run(ctx context.Context, args []string) int {
	app := newApp()
	err := app.Run(ctx, args)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "ctr-seed: %v\n", err)
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "ctr-seed: %s\n", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "ctr-seed: %v\n", err)
	return 1
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func onUsageError(_ context.Context, _ *cli.Command, err error, _ bool) error {
	return usageError{err}
}

func newApp() *cli.Command {
	cmds := []*cli.Command{lsCommand(), verifyCommand()}
	for _, c := range cmds {
		c.OnUsageError = onUsageError
	}
	return &cli.Command{
		Name:    "ctr-seed",
		Usage:   "get container images onto containerd nodes from seeds (image archives)",
		Version: version,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "enable debug output in logs"},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			if cmd.Bool("debug") {
				if err := log.SetLevel("debug"); err != nil {
					return ctx, err
				}
			}
			return ctx, nil
		},
		Commands:       cmds,
		OnUsageError:   onUsageError,
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
}

// needArgs is a usage check for commands that take seeds.
func needArgs(cmd *cli.Command, what string) error {
	if cmd.Args().Len() == 0 {
		return usageError{fmt.Errorf("%s: at least one %s is required", cmd.Name, what)}
	}
	return nil
}
