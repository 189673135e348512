package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/setting"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// globalFlags read like ctr's.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "debug", Usage: "enable debug output in logs"},
		&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Usage: "address for containerd's GRPC server",
			Value: defaults.DefaultAddress, Sources: cli.EnvVars("CONTAINERD_ADDRESS")},
		&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "namespace to use with commands",
			Value: namespaces.Default, Sources: cli.EnvVars("CONTAINERD_NAMESPACE")},
		&cli.DurationFlag{Name: "connect-timeout", Usage: "timeout for connecting to containerd", Value: 10 * time.Second},
	}
}

// newClient connects to containerd like ctr does: a socket that is not
// there fails at once (ctr's "cannot access socket"), not after the
// connect timeout.
func newClient(ctx context.Context, cmd *cli.Command) (*client.Client, context.Context, error) {
	ns := cmd.String("namespace")
	addr := cmd.String("address")
	if path, ok := strings.CutPrefix(addr, "unix://"); ok || !strings.Contains(addr, "://") {
		if !ok {
			path = addr
		}
		if _, err := os.Stat(path); err != nil {
			return nil, ctx, fmt.Errorf("cannot access socket %s: %w", path, err)
		}
	}
	c, err := client.New(addr, client.WithDefaultNamespace(ns), client.WithTimeout(cmd.Duration("connect-timeout")))
	if err != nil {
		return nil, ctx, fmt.Errorf("connecting to containerd at %s: %w", cmd.String("address"), err)
	}
	return c, namespaces.WithNamespace(ctx, ns), nil
}

// importFlag is a flag of import and pull and the importer option it
// sets (nil: none). A new setting is a field of importer.Options and one
// entry in importFlags.
type importFlag struct {
	flag cli.Flag
	set  func(*cli.Command, *importer.Options) error
}

// importFlags are the flags import and pull share, read by importOptions
// in this order (the layer caps and the trust flags are shared with
// verify and read on their own).
func importFlags() []importFlag {
	return []importFlag{
		{&cli.StringFlag{Name: "snapshotter", Usage: "snapshotter name", Value: defaults.DefaultSnapshotter, Sources: cli.EnvVars("CONTAINERD_SNAPSHOTTER")},
			func(c *cli.Command, o *importer.Options) error { o.Snapshotter = c.String("snapshotter"); return nil }},
		{&cli.BoolFlag{Name: "no-unpack", Usage: "store content and records only, do not unpack"},
			func(c *cli.Command, o *importer.Options) error { o.NoUnpack = c.Bool("no-unpack"); return nil }},
		{&cli.BoolFlag{Name: "discard-unpacked-layers", Usage: "let the garbage collector remove layer blobs once unpacked (as CRI's discard_unpacked_layers)"},
			func(c *cli.Command, o *importer.Options) error {
				o.DiscardUnpackedLayers = c.Bool("discard-unpacked-layers")
				return nil
			}},
		{&cli.BoolFlag{Name: "sync-fs", Usage: "sync each layer's filesystem before its snapshot is committed"},
			func(c *cli.Command, o *importer.Options) error { o.SyncFs = c.Bool("sync-fs"); return nil }},
		{&cli.BoolFlag{Name: "daemon-apply", Usage: "apply layers with containerd's diff service (as ctr does), even when the snapshots are on this node and ctr-seed could apply them itself", Sources: cli.EnvVars("CTR_SEED_DAEMON_APPLY")},
			func(c *cli.Command, o *importer.Options) error { o.DaemonApply = c.Bool("daemon-apply"); return nil }},
		{&cli.BoolFlag{Name: "all-platforms", Usage: "import content for all platforms (only --platform or the host's is unpacked)"},
			func(c *cli.Command, o *importer.Options) error { o.AllPlatforms = c.Bool("all-platforms"); return nil }},
		{&cli.StringSliceFlag{Name: "platform", Usage: "platform to import and unpack (repeatable); default: the host's"},
			func(c *cli.Command, o *importer.Options) (err error) {
				o.Platforms, err = parsePlatforms(c.StringSlice("platform"))
				return err
			}},
		{&cli.StringSliceFlag{Name: "label", Usage: "label to add to the images (key=value, repeatable)"},
			func(c *cli.Command, o *importer.Options) (err error) {
				o.Labels, err = parseLabels(c.StringSlice("label"))
				return err
			}},
		{&cli.BoolFlag{Name: "pin", Usage: "pin the images (io.cri-containerd.pinned=pinned) so kubelet never removes them"},
			func(c *cli.Command, o *importer.Options) error { o.Pin = c.Bool("pin"); return nil }},
		{&cli.BoolFlag{Name: "digest-refs", Usage: "record repo@sha256:… beside every repo:tag, as a pull through CRI does"},
			func(c *cli.Command, o *importer.Options) error { o.DigestRefs = c.Bool("digest-refs"); return nil }},
		{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"}, nil},
	}
}

// commonImportFlags are shared by import and pull.
func commonImportFlags() []cli.Flag {
	var flags []cli.Flag
	for _, f := range importFlags() {
		flags = append(flags, f.flag)
	}
	return append(flags, layerLimitFlags()...)
}

// layerLimitFlags are the decompression-bomb caps of import, pull and
// verify: the layer caps and the spool cap.
func layerLimitFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.IntFlag{Name: "max-layer-ratio", Value: layerlimit.DefaultRatio,
			Usage: fmt.Sprintf("refuse a layer that expands to more than N times its compressed size (and beyond %d bytes); 0: no ratio cap", layerlimit.DefaultAllowance)},
		&cli.Int64Flag{Name: "max-layer-bytes", Usage: "refuse a layer whose uncompressed size exceeds N bytes, whatever its ratio; 0: no cap"},
	}, spoolFlags()...)
}

// spoolFlags cap the spool of gzip/zstd seeds, for every command that
// opens seeds.
func spoolFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-spool-bytes", Value: fetcher.DefaultMaxSpoolBytes, Sources: cli.EnvVars("CTR_SEED_MAX_SPOOL_BYTES"),
			Usage: "refuse a gzip- or zstd-compressed seed whose tar decompresses to more than N bytes (it is spooled to $TMPDIR while open); 0: no cap"},
	}
}

// layerLimits reads --max-layer-ratio and --max-layer-bytes.
func layerLimits(cmd *cli.Command) (layerlimit.Limits, error) {
	l := layerlimit.Default()
	l.Ratio, l.MaxBytes = int(cmd.Int("max-layer-ratio")), cmd.Int64("max-layer-bytes")
	if err := l.Validate(); err != nil {
		return l, optionError(err)
	}
	return l, nil
}

// flagOf is the flag that sets an option, by the option's key (the toml
// key its validation names, as the plugin's config does).
var flagOf = map[string]string{
	"max_layer_ratio":         "--max-layer-ratio",
	"max_layer_bytes":         "--max-layer-bytes",
	"discard_unpacked_layers": "--discard-unpacked-layers",
	"verify":                  "--verify",
	"verify_keys":             "--verify-key",
}

// optionError is a usage error of the options' validation, naming the
// flag where the options name their key.
func optionError(err error) error {
	var se *setting.Error
	if errors.As(err, &se) {
		if f, ok := flagOf[se.Key]; ok {
			named := *se
			named.Key = f
			return usageError{&named}
		}
	}
	return usageError{err}
}

// spoolOptions reads --max-spool-bytes.
func spoolOptions(cmd *cli.Command) ([]fetcher.Opt, error) {
	n := cmd.Int64("max-spool-bytes")
	if n < 0 {
		return nil, usageError{fmt.Errorf("--max-spool-bytes %d: must be 0 (no cap) or more", n)}
	}
	return []fetcher.Opt{fetcher.WithMaxSpoolBytes(n)}, nil
}

func parsePlatforms(specs []string) ([]ocispec.Platform, error) {
	ps, err := importer.ParsePlatforms(specs)
	if err != nil {
		return nil, usageError{fmt.Errorf("--platform %w", err)}
	}
	return ps, nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--label %q: want key=value", kv)}
		}
		m[k] = v
	}
	return m, nil
}
