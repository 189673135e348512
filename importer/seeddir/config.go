// Package seeddir keeps a directory of seeds imported into containerd:
// every seed at start, each new or changed one while running, each once.
// The containerd plugin and `ctr-seed serve` are both this service; they
// differ only in how they reach containerd (in-process or over the socket).
package seeddir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/setting"
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
	// BaseName names entries that carry a tag alone (umoci layouts,
	// ref.name = "1.35"), as --base-name does: "registry.local/app" makes
	// them registry.local/app:1.35. Empty: containerd's import-<date>:TAG,
	// a name that changes with the date (a warning is logged).
	BaseName string `toml:"base_name"`
	// DiscardUnpackedLayers lets the garbage collector remove layer blobs
	// once unpacked, as CRI's discard_unpacked_layers (the snapshots stay).
	DiscardUnpackedLayers bool `toml:"discard_unpacked_layers"`
	// MaxLayerRatio refuses a layer that expands to more than this many
	// times its compressed size (and beyond 1 GiB), as --max-layer-ratio
	// does; 0: no ratio cap. Default: 200.
	MaxLayerRatio int `toml:"max_layer_ratio"`
	// MaxLayerBytes refuses a layer whose uncompressed size exceeds this
	// many bytes, whatever its ratio, as --max-layer-bytes does; 0: none.
	MaxLayerBytes int64 `toml:"max_layer_bytes"`
	// DigestRefs records repo@sha256:… beside every repo:tag, so the
	// images look pulled: a pod spec can name them by digest, and a peer
	// (spegel, k3s's embedded registry) can serve them.
	DigestRefs bool `toml:"digest_refs"`
	// Prune unpins (never deletes) the images of a seed that has left the
	// directory, so kubelet's image GC may collect them once unused.
	Prune bool `toml:"prune"`
	// HostsDir is a containerd hosts directory (config_path's layout, as
	// pull --hosts-dir) for the image lists (*.txt): what no seed holds is
	// pulled through it.
	HostsDir string `toml:"hosts_dir"`
	// PlainHTTP registries are talked to over HTTP (host or host:port),
	// for image lists, where no hosts.toml says otherwise.
	PlainHTTP []string `toml:"plain_http"`
	// PullTimeout bounds the pull of one reference of an image list, from
	// its first request to its record ("10m"): a registry that trickles a
	// manifest or never answers fails that reference then, and the list is
	// tried again with backoff. Default: 10 minutes (DefaultPullTimeout).
	PullTimeout time.Duration `toml:"pull_timeout"`
	// VerifyKeys are PEM public key files (cosign.pub, RSA, ed25519): an
	// image is imported only with a cosign signature valid under one of
	// them, over its digest, naming its repository; offline, no
	// transparency log. Empty: nothing is checked.
	VerifyKeys []string `toml:"verify_keys"`
	// Verify is "always" (unsigned images are refused; the default) or
	// "if-signed" (only images whose signatures fail are refused).
	Verify string `toml:"verify"`
	// VerifyIgnoreIdentity skips the check that a signature names the
	// image's repository.
	VerifyIgnoreIdentity bool `toml:"verify_ignore_identity"`
}

// DefaultConfig is what an empty section means.
func DefaultConfig() Config {
	return Config{
		SeedsDir:      "/var/lib/containerd-seed/seeds",
		Namespace:     "k8s.io",
		Snapshotter:   defaults.DefaultSnapshotter,
		Unpack:        true,
		Pin:           true,
		Watch:         true,
		MaxSpoolBytes: fetcher.DefaultMaxSpoolBytes,
		MaxLayerRatio: layerlimit.DefaultRatio,
		PullTimeout:   DefaultPullTimeout,
	}
}

// DefaultPullTimeout is pull_timeout's default: above the pull of any real
// image over a slow link, far below "forever".
const DefaultPullTimeout = 10 * time.Minute

// LoadConfig reads `ctr-seed serve`'s file: the plugin section's keys at
// its top level; missing keys keep the defaults, unknown keys are refused
// (errdefs.ErrInvalidArgument). The plugin's section, as containerd
// decodes it, goes through ConfigFromTable, the same check; both then go
// through Settings.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if section, ok, err := pluginSection(b); err != nil {
		return cfg, fmt.Errorf("config %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	} else if ok {
		b = section // a containerd config.toml: its seed plugin's table
	}
	cfg, err = decodeStrict(b)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// decodeStrict reads the plugin's keys from b over the defaults; a key
// Config lacks is refused (a typo in verify_keys must not mean "verify
// nothing").
func decodeStrict(b []byte) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return cfg, fmt.Errorf("unknown keys %v: %w", un, errdefs.ErrInvalidArgument)
	}
	return cfg, nil
}

// DefaultTable is DefaultConfig as a TOML table: what the plugin registers
// as its config, so that containerd decodes its section into a map (every
// key kept: decoded into a struct, an unknown key would only be a warning)
// and prints the defaults in `config default`.
func DefaultTable() map[string]any {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(DefaultConfig()); err != nil {
		panic(fmt.Sprintf("encoding the default config: %v", err))
	}
	t := map[string]any{}
	if _, err := toml.Decode(buf.String(), &t); err != nil {
		panic(fmt.Sprintf("decoding the default config: %v", err))
	}
	return t
}

// ConfigFromTable reads the plugin's section as containerd decoded it
// (over DefaultTable), as LoadConfig reads serve's file: missing keys keep
// the defaults, unknown keys are refused (errdefs.ErrInvalidArgument).
func ConfigFromTable(t map[string]any) (Config, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(t); err != nil {
		return DefaultConfig(), fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	return decodeStrict(buf.Bytes())
}

// Settings is a checked Config, turned into what the service runs with.
type Settings struct {
	Config
	// Importer is every import's options.
	Importer importer.Options
	// Fetcher opens every seed (the spool cap; the spool dir is added
	// where the state dir is known).
	Fetcher []fetcher.Opt
}

// Settings checks the config and derives the importer's and the seeds'
// options from it: the one place the keys are interpreted.
func (c Config) Settings() (Settings, error) {
	if c.MaxSpoolBytes < 0 {
		return Settings{}, fmt.Errorf("max_spool_bytes: %d: must be 0 (no cap) or more: %w", c.MaxSpoolBytes, errdefs.ErrInvalidArgument)
	}
	if c.PullTimeout <= 0 {
		return Settings{}, fmt.Errorf("pull_timeout: %s: must be more than 0: %w", c.PullTimeout, errdefs.ErrInvalidArgument)
	}
	limits := layerlimit.Default()
	limits.Ratio, limits.MaxBytes = c.MaxLayerRatio, c.MaxLayerBytes
	ps, err := importer.ParsePlatforms(c.Platforms)
	if err != nil {
		return Settings{}, fmt.Errorf("platforms: %w", err)
	}
	verify := trust.Options{Mode: c.Verify, IgnoreIdentity: c.VerifyIgnoreIdentity}
	for _, p := range c.VerifyKeys {
		b, err := os.ReadFile(p)
		if err != nil {
			return Settings{}, fmt.Errorf("verify_keys: %w", err)
		}
		verify.Keys = append(verify.Keys, trust.Key{Name: filepath.Base(p), PEM: b})
	}
	opts := importer.Options{
		Snapshotter: c.Snapshotter,
		NoUnpack:    !c.Unpack,
		Platforms:   ps,
		Labels:      c.Labels,
		Pin:         c.Pin,
		Limits:      &limits,
		BaseName:    c.BaseName,
		DigestRefs:  c.DigestRefs,
		Verify:      verify,

		DiscardUnpackedLayers: c.DiscardUnpackedLayers && c.Unpack,
	}
	// The importer's own check, whose errors name the keys these are
	// (max_layer_ratio, verify, ...); a key file that is no key is named
	// by its file.
	if err := opts.Validate(); err != nil {
		if se := (*setting.Error)(nil); !errors.As(err, &se) {
			err = fmt.Errorf("verify_keys: %w", err)
		}
		return Settings{}, err
	}
	return Settings{Config: c, Importer: opts,
		Fetcher: []fetcher.Opt{fetcher.WithMaxSpoolBytes(c.MaxSpoolBytes)}}, nil
}

// PluginSection is the plugin's table in containerd's config.toml
// (plugin.Type + "." + plugin.ID).
const PluginSection = "io.containerd.seed.v1.importer"

// pluginSection finds, in a containerd config.toml (one with a [plugins]
// table), the seed plugin's table, re-encoded, so that serve reads the
// same file the plugin does. ok is false for a file of top-level keys.
func pluginSection(b []byte) (section []byte, ok bool, err error) {
	var doc map[string]any
	if _, err := toml.Decode(string(b), &doc); err != nil {
		return nil, false, err
	}
	plugins, isContainerd := doc["plugins"].(map[string]any)
	if !isContainerd {
		return nil, false, nil
	}
	t, found := plugins[PluginSection].(map[string]any)
	if !found {
		return nil, false, fmt.Errorf("a containerd config without a [plugins.%q] table: give serve the plugin's keys at the top level of a file of its own (see ctr-seed.toml)", PluginSection)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(t); err != nil {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}
