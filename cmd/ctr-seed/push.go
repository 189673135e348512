package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/pusher"
	distref "github.com/distribution/reference"
	"github.com/urfave/cli/v3"
)

// pushCommand fills a site registry from seeds.
func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "push every image of seeds (with their signatures) into a registry, sending only what it lacks",
		ArgsUsage: "--to HOST[:PORT][/PREFIX] [flags] SEED...",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "the registry, and a path prefix: images go to HOST/PREFIX/<their registry>/<path>"},
			&cli.BoolFlag{Name: "flat", Usage: "leave the images' own registry host out of the repositories (hauler's layout)"},
			&cli.BoolFlag{Name: "last-wins", Usage: "when seeds name one tag with different digests, push each in order, the last one winning (default: push the first, refuse the others, exit 1)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
		}, append(registryFlags(), spoolFlags()...)...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "seed"); err != nil {
				return err
			}
			if cmd.String("to") == "" {
				return usageError{fmt.Errorf("push: --to HOST[:PORT][/PREFIX] is required")}
			}
			return runPush(ctx, cmd)
		},
	}
}

func runPush(ctx context.Context, cmd *cli.Command) error {
	seeds, err := openArgSeeds(ctx, cmd)
	if err != nil {
		return err
	}
	defer seeds.Close()
	resolver, err := fetcher.NewRegistryResolver(ctx, fetcher.RegistryOptions{
		HostsDir: cmd.String("hosts-dir"), PlainHTTP: cmd.Bool("plain-http"), User: cmd.String("user")})
	if err != nil {
		return err
	}
	o := newOutput(cmd)
	defer o.Close()
	results, err := pusher.Push(ctx, seeds, resolver, pusher.Options{To: cmd.String("to"), Flat: cmd.Bool("flat"), LastWins: cmd.Bool("last-wins"), Progress: saveProgress{o}})
	if err != nil {
		return err
	}
	failed := 0
	var up, have, mounted int
	var sent int64
	for _, r := range results {
		// What a failed image wrote is counted too, as its "wrote" lines
		// said.
		up, have, mounted, sent = up+r.Uploaded, have+r.Existing, mounted+r.Mounted, sent+r.Bytes
		if r.Err != nil {
			failed++
			o.line(o.errw, fmt.Sprintf("ctr-seed: %s\n", oneLine(r.Err)))
			continue
		}
		if r.Warning != "" && !cmd.Bool("quiet") {
			o.line(o.errw, fmt.Sprintf("ctr-seed: warning: %s\n", r.Warning))
		}
		if !cmd.Bool("quiet") {
			o.line(o.out, fmt.Sprintf("pushed %s → %s (%s): %d blobs uploaded, %d already there, %d mounted, %s sent\n",
				r.Name, r.Target, r.Digest, r.Uploaded, r.Existing, r.Mounted, sizeText(r.Bytes)))
		}
	}
	if !cmd.Bool("quiet") {
		o.line(o.out, fmt.Sprintf("pushed %d of %d images to %s: %d blobs uploaded, %d already there, %d mounted, %s sent\n",
			len(results)-failed, len(results), cmd.String("to"), up, have, mounted, sizeText(sent)))
	}
	if failed > 0 {
		return &importer.FailedError{Failed: failed, Total: len(results)}
	}
	return nil
}

// hostsCommand points nodes' containerd at the site mirror.
func hostsCommand() *cli.Command {
	return &cli.Command{
		Name:      "hosts",
		Usage:     "write containerd hosts.toml files that pull the seeds' registries from a site mirror ctr-seed push filled",
		ArgsUsage: "--mirror HOST[:PORT][/PREFIX] -o DIR [flags] [SEED...]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "mirror", Usage: "the site registry, and the prefix push used"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the hosts directory to write (containerd's config_path, ctr --hosts-dir)"},
			&cli.StringSliceFlag{Name: "registry", Usage: "registry to write a hosts.toml for (repeatable), besides those the seeds' images name"},
			&cli.BoolFlag{Name: "plain-http", Usage: "the mirror speaks plain HTTP"},
			&cli.BoolFlag{Name: "flat", Usage: "the mirror's layout leaves the registry host out (push --flat)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing hosts.toml files"},
		}, spoolFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.String("mirror") == "" || cmd.String("output") == "" {
				return usageError{fmt.Errorf("hosts: --mirror and -o DIR are required")}
			}
			regs := map[string]bool{}
			for _, r := range cmd.StringSlice("registry") {
				regs[r] = true
			}
			if cmd.Args().Len() > 0 {
				seeds, err := openArgSeeds(ctx, cmd)
				if err != nil {
					return err
				}
				defer seeds.Close()
				for _, s := range seeds {
					imgs, err := s.Images(ctx)
					if err != nil {
						return err
					}
					for _, img := range imgs {
						if n, err := distref.ParseNormalizedNamed(img.Name); err == nil && img.Name != "" {
							regs[distref.Domain(n)] = true
						}
					}
				}
			}
			if len(regs) == 0 {
				return usageError{fmt.Errorf("hosts: no registry: name seeds or --registry")}
			}
			list := make([]string, 0, len(regs))
			for r := range regs {
				list = append(list, r)
			}
			sort.Strings(list)
			files, err := pusher.WriteHosts(cmd.String("output"), list, pusher.HostsOptions{
				Mirror: cmd.String("mirror"), Flat: cmd.Bool("flat"), PlainHTTP: cmd.Bool("plain-http"), Force: cmd.Bool("force")})
			for _, f := range files {
				fmt.Fprintf(cmd.Root().Writer, "wrote %s\n", f)
			}
			return err
		},
	}
}

// openArgSeeds opens the seeds the command's arguments name, with its
// spool flags.
func openArgSeeds(ctx context.Context, cmd *cli.Command) (fetcher.Seeds, error) {
	sopts, err := spoolOptions(cmd)
	if err != nil {
		return nil, err
	}
	return openSeeds(ctx, cmd.Args().Slice(), sopts...)
}
