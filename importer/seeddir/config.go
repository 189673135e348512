// Package seeddir keeps a directory of seeds imported into containerd:
// every seed at start, each new or changed one while running, each once.
// The containerd plugin and `ctr-seed serve` are both this service; they
// differ only in how they reach containerd (in-process or over the socket).
package seeddir

import (
	"fmt"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Config is the plugin's section in containerd's config.toml
// ([plugins."io.containerd.seed.v1.importer"]) and the file
// `ctr-seed serve --config` reads: the same keys for both.
type Config struct {
	// SeedsDir holds the seeds: OCI or docker archives (optionally gzip or
	// zstd), or OCI layout directories. Hidden names (".x") are ignored, so
	// write under a hidden name and rename into place.
	SeedsDir string `toml:"seeds_dir"`
	// Namespace the images are created in; k8s.io is where CRI looks.
	Namespace string `toml:"namespace"`
	// Snapshotter to unpack into.
	Snapshotter string `toml:"snapshotter"`
	// Platforms to import and unpack; empty means the host's.
	Platforms []string `toml:"platforms"`
	// Unpack the layers (false: content and records only).
	Unpack bool `toml:"unpack"`
	// Pin the images (io.cri-containerd.pinned=pinned) so kubelet's image
	// garbage collection never removes them.
	Pin bool `toml:"pin"`
	// Watch the directory and import seeds dropped in while running.
	Watch bool `toml:"watch"`
	// Labels added to every image.
	Labels map[string]string `toml:"labels"`
	// MaxSpoolBytes caps a gzip- or zstd-compressed seed: it is
	// decompressed into an unlinked spool file under the state dir while
	// it is imported, and one whose tar decompresses to more than this
	// many bytes is refused (a decompression bomb would otherwise fill the
	// disk containerd shares). 0: no cap. Default: 64 GiB
	// (fetcher.DefaultMaxSpoolBytes), above any real image archive.
	MaxSpoolBytes int64 `toml:"max_spool_bytes"`
}

// DefaultConfig is what an empty section means.
func DefaultConfig() Config {
	return Config{
		SeedsDir:      "/var/lib/containerd-seed/seeds",
		Namespace:     "k8s.io",
		Snapshotter:   "overlayfs",
		Unpack:        true,
		Pin:           true,
		Watch:         true,
		MaxSpoolBytes: fetcher.DefaultMaxSpoolBytes,
	}
}

// importerOptions turns the config into the importer's options.
func (c Config) importerOptions() (importer.Options, error) {
	var ps []ocispec.Platform
	for _, s := range c.Platforms {
		p, err := platforms.Parse(s)
		if err != nil {
			return importer.Options{}, fmt.Errorf("platforms: %q: %w", s, err)
		}
		ps = append(ps, p)
	}
	return importer.Options{
		Snapshotter: c.Snapshotter,
		NoUnpack:    !c.Unpack,
		Platforms:   ps,
		Labels:      c.Labels,
		Pin:         c.Pin,
	}, nil
}

// fetcherOptions turns the config into the options every seed is opened
// with (besides its spool dir).
func (c Config) fetcherOptions() ([]fetcher.Opt, error) {
	if c.MaxSpoolBytes < 0 {
		return nil, fmt.Errorf("max_spool_bytes: %d: must be 0 (no cap) or more", c.MaxSpoolBytes)
	}
	return []fetcher.Opt{fetcher.WithMaxSpoolBytes(c.MaxSpoolBytes)}, nil
}
