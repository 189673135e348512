package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/client"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/trust"
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
			&cli.StringSliceFlag{Name: "input", Aliases: []string{"i"}, Usage: "seed to import (repeatable), as nerdctl load's; \"-\" or SEED arguments work too"},
			&cli.BoolFlag{Name: "in-daemon", Usage: "ask containerd-seed to import the seeds itself, from this node's disk (no blob crosses the socket)"},
		}, append(verifyFlags(), commonImportFlags()...)...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 && len(cmd.StringSlice("input")) == 0 {
				return usageError{fmt.Errorf("import: at least one seed is required (a file, a directory of seeds, or - for stdin)")}
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
			if cmd.Bool("in-daemon") {
				return runImportInDaemon(ctx, cmd, opts)
			}
			return runImport(ctx, cmd, opts)
		},
	}
}

// importOptions reads the flags import and pull share, and checks them as
// the importer will.
func importOptions(cmd *cli.Command) (importer.Options, error) {
	var opts importer.Options
	for _, f := range importFlags() {
		if f.set != nil {
			if err := f.set(cmd, &opts); err != nil {
				return opts, err
			}
		}
	}
	limits, err := layerLimits(cmd)
	if err != nil {
		return opts, err
	}
	opts.Limits = &limits
	if opts.Verify, err = verifyOptions(cmd); err != nil {
		return opts, err
	}
	if err := opts.Validate(); err != nil {
		return opts, optionError(err)
	}
	return opts, nil
}

// runImport imports every seed that opens; one that does not (missing,
// not an archive) is reported like a failed image, and the others still
// land: exit 1 either way (importer.ImportPaths).
func runImport(ctx context.Context, cmd *cli.Command, opts importer.Options) error {
	sopts, err := spoolOptions(cmd)
	if err != nil {
		return err
	}
	sess, ctx, err := newSession(ctx, cmd, nil, &opts)
	if err != nil {
		return err
	}
	defer sess.Close()
	im, err := importer.New(importer.FromClient(sess.client), opts)
	if err != nil {
		return err
	}
	_, err = im.ImportPaths(ctx, append(cmd.StringSlice("input"), cmd.Args().Slice()...), append(sopts, fetcher.WithStdin(cmd.Root().Reader))...)
	return err
}

// session is what import and pull share: seeds open, containerd
// connected, output wired to the importer.
type session struct {
	seeds  fetcher.Seeds
	client *client.Client
	out    *output
}

func openSession(ctx context.Context, cmd *cli.Command, seedPaths []string, opts *importer.Options) (*session, context.Context, error) {
	sopts, err := spoolOptions(cmd)
	if err != nil {
		return nil, ctx, err
	}
	seeds, err := openSeeds(ctx, seedPaths, sopts...)
	if err != nil {
		return nil, ctx, err
	}
	return newSession(ctx, cmd, seeds, opts)
}

// newSession connects to containerd for seeds (closed on failure) and
// wires the output to the importer.
func newSession(ctx context.Context, cmd *cli.Command, seeds fetcher.Seeds, opts *importer.Options) (*session, context.Context, error) {
	c, ctx, err := newClient(ctx, cmd)
	if err != nil {
		seeds.Close()
		return nil, ctx, err
	}
	s := &session{seeds: seeds, client: c, out: newOutput(cmd)}
	opts.Observer = s.out
	return s, ctx, nil
}

// Close waits for the output, then lets go of containerd and the seeds.
func (s *session) Close() {
	s.out.Close()
	s.client.Close()
	s.seeds.Close()
}

// openSeeds opens every seed the paths name, as import does
// (fetcher.OpenAll), for commands that read blobs from them (pull, save,
// push): there, a seed that does not open fails the command.
func openSeeds(ctx context.Context, paths []string, opts ...fetcher.Opt) (fetcher.Seeds, error) {
	var seeds fetcher.Seeds
	// Path by path: the first that fails ends the command before the
	// others are opened (a compressed seed is spooled as it opens).
	for _, p := range paths {
		some, unopened := fetcher.OpenAll(ctx, []string{p}, opts...)
		seeds = append(seeds, some...)
		for _, u := range unopened {
			if u.Err != nil {
				seeds.Close()
				return nil, u.Err
			}
		}
	}
	return seeds, nil
}

// verifyFlags are the trust flags of import and pull.
func verifyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "verify-key", Usage: "public key (PEM: cosign.pub, RSA, ed25519) an image's cosign signature must be valid under (repeatable); checked offline, no transparency log"},
		&cli.StringFlag{Name: "verify", Usage: "with --verify-key: always (refuse unsigned images) or if-signed (refuse only bad signatures)", Value: "always"},
		&cli.BoolFlag{Name: "verify-ignore-identity", Usage: "do not check that a signature names the image's repository"},
	}
}

// verifyOptions reads --verify-key, --verify and --verify-ignore-identity;
// a key that cannot be read is a usage error naming it (one that is no
// key is importer.Options.Validate's).
func verifyOptions(cmd *cli.Command) (trust.Options, error) {
	o := trust.Options{Mode: cmd.String("verify"), IgnoreIdentity: cmd.Bool("verify-ignore-identity")}
	for _, p := range cmd.StringSlice("verify-key") {
		b, err := os.ReadFile(p)
		if err != nil {
			return o, usageError{fmt.Errorf("--verify-key: %w", err)}
		}
		o.Keys = append(o.Keys, trust.Key{Name: filepath.Base(p), PEM: b})
	}
	if !o.Enabled() && (cmd.IsSet("verify") || o.IgnoreIdentity) {
		return o, usageError{fmt.Errorf("--verify and --verify-ignore-identity need --verify-key")}
	}
	return o, nil
}
