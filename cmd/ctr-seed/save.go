package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/saver"
	digest "github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v3"
)

// saveCommand writes a seed on the connected side.
func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "write a seed of images from seeds, the local containerd or a registry (a delta with --have)",
		ArgsUsage: "-o OUT [flags] REF...",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the seed to write (an OCI image layout tar with a docker manifest.json)"},
			&cli.StringSliceFlag{Name: "seed", Usage: "seed to take blobs from first (repeatable)"},
			&cli.BoolFlag{Name: "from-containerd", Usage: "take images and blobs from the local containerd too (-a, -n)"},
			&cli.StringSliceFlag{Name: "have", Usage: "inventory of a node (ctr-seed inventory): leave out the layers every given node holds (repeatable)"},
			&cli.BoolFlag{Name: "all-platforms", Usage: "save every platform"},
			&cli.StringSliceFlag{Name: "platform", Usage: "platform to save (repeatable); default: the host's"},
			&cli.StringFlag{Name: "compress", Usage: "compress the whole seed: gzip or zstd (default: none)"},
			&cli.StringFlag{Name: "split", Usage: "write OUT.001, OUT.002, … of at most SIZE each (4G, 700M): for FAT32 sticks and DVDs"},
			&cli.BoolFlag{Name: "no-referrers", Usage: "leave out the images' cosign signatures, attestations and SBOMs, and their OCI 1.1 referrers (saved by default)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
		}, append(registryFlags(), spoolFlags()...)...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, "reference"); err != nil {
				return err
			}
			out := cmd.String("output")
			if out == "" {
				return usageError{fmt.Errorf("save: -o OUT is required")}
			}
			return runSave(ctx, cmd, out)
		},
	}
}

func runSave(ctx context.Context, cmd *cli.Command, out string) error {
	ps, err := parsePlatforms(cmd.StringSlice("platform"))
	if err != nil {
		return err
	}
	o := newOutput(cmd)
	defer o.Close()
	opts := saver.Options{Platforms: ps, AllPlatforms: cmd.Bool("all-platforms"), Compress: cmd.String("compress"), Progress: saveProgress{o},
		NoSignatures: cmd.Bool("no-referrers")}
	if c := opts.Compress; c != "" && c != "gzip" && c != "zstd" {
		return usageError{fmt.Errorf("--compress %q: want gzip or zstd", c)}
	}
	for _, p := range cmd.StringSlice("have") {
		inv, err := saver.ReadInventory(p)
		if err != nil {
			return err
		}
		opts.Have = append(opts.Have, inv)
	}
	sopts, err := spoolOptions(cmd)
	if err != nil {
		return err
	}
	seeds, err := openSeeds(ctx, cmd.StringSlice("seed"), sopts...)
	if err != nil {
		return err
	}
	defer seeds.Close()
	src := saver.Sources{Seeds: seeds}
	if cmd.Bool("from-containerd") {
		c, cctx, err := newClient(ctx, cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx = cctx
		src.Store, src.Images = c.ContentStore(), c.ImageService()
	}
	if src.Registry, err = registryResolver(ctx, cmd); err != nil {
		return err
	}
	var partSize int64
	if v := cmd.String("split"); v != "" {
		if partSize, err = saver.ParseSize(v); err != nil {
			return usageError{fmt.Errorf("--split: %w", err)}
		}
	}
	// Written under hidden names beside OUT, renamed at the end: a failed
	// save leaves no partial seed.
	w := saver.NewOutput(out, partSize)
	for _, n := range w.RemoveStale() {
		if !o.quiet {
			o.line(o.out, fmt.Sprintf("removed %s: left by a save that was killed\n", fetcher.Escape(filepath.Join(filepath.Dir(out), n))))
		}
	}
	res, err := saver.Save(ctx, w, cmd.Args().Slice(), src, opts)
	var files []string
	if err == nil {
		files, err = w.Commit()
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("save %s: %w", out, err)
	}
	if !o.quiet {
		where := out
		if len(files) > 1 || partSize > 0 {
			where = fmt.Sprintf("%s (%d parts: %s … %s)", out, len(files), filepath.Base(files[0]), filepath.Base(files[len(files)-1]))
		}
		line := fmt.Sprintf("saved %s: %d images, %d blobs, %s", where, len(res.Images), res.Blobs, sizeText(res.Bytes))
		if res.Signatures > 0 {
			line += fmt.Sprintf(", %d %s", res.Signatures, plural(res.Signatures, "signature", "signatures"))
		}
		if res.Attachments > 0 {
			line += fmt.Sprintf(", %d %s", res.Attachments, plural(res.Attachments, "attestation or SBOM", "attestations and SBOMs"))
		}
		if res.Omitted > 0 {
			line += fmt.Sprintf("; left out %d layers (%s) the nodes hold", res.Omitted, sizeText(res.OmittedBytes))
		}
		o.line(o.out, line+"\n")
	}
	return nil
}

// saveProgress shows a save's (or a push's) blobs as an import's are
// shown: a bar each on a terminal, a "wrote" line each otherwise.
type saveProgress struct{ o *output }

func (p saveProgress) BlobStarted(d digest.Digest, size int64, from string) {
	p.o.BlobStarted("", d, size, importer.Source(from))
}
func (p saveProgress) BlobProgress(d digest.Digest, n int64) { p.o.BlobProgress(d, n) }
func (p saveProgress) BlobDone(d digest.Digest, err error)   { p.o.BlobDone(d, err) }
