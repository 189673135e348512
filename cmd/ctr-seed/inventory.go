package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ctr-seed/ctr-seed/saver"
	"github.com/urfave/cli/v3"
)

// inventoryCommand writes what a node holds, for delta seeds.
func inventoryCommand() *cli.Command {
	return &cli.Command{
		Name:  "inventory",
		Usage: "write what this node's containerd holds (for ctr-seed save --have)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write; default: stdout"},
			&cli.BoolFlag{Name: "all-namespaces", Usage: "list the images of every namespace (content is listed from all of them anyway)"},
			&cli.StringFlag{Name: "node", Usage: "the node's name in the inventory; default: the host name"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 0 {
				return usageError{fmt.Errorf("inventory takes no arguments")}
			}
			node := cmd.String("node")
			if node == "" {
				node, _ = os.Hostname()
			}
			c, ctx, err := newClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			inv, err := saver.TakeInventory(ctx, c, node, cmd.String("namespace"), cmd.Bool("all-namespaces"))
			if err != nil {
				return err
			}
			out := cmd.String("output")
			if out == "" {
				return inv.Write(cmd.Root().Writer)
			}
			return writeFileAtomic(out, func(w io.Writer) error { return inv.Write(w) })
		},
	}
}

// writeFileAtomic writes path through a hidden file renamed into place.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return err
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
