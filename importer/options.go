package importer

import (
	"fmt"
	"time"

	"github.com/containerd/platforms"

	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/setting"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options are the knobs of an import or pull, named after ctr's flags.
// Each field's toml key is its name in the plugin's section and serve's
// file (where those have it) and in Validate's errors; its json key is its
// name in the --in-daemon wire schema (importer/rpc documents it; "-":
// the client's own, not sent). The zero value of every field is its
// default.
type Options struct {
	// Snapshotter to unpack into; "" is containerd's default (overlayfs).
	Snapshotter string `toml:"snapshotter" json:"snapshotter,omitempty"`
	// NoUnpack stores content and records only.
	NoUnpack bool `toml:"no_unpack" json:"noUnpack,omitempty"`
	// Platforms whose content is imported and unpacked; none means the
	// host's. AllPlatforms imports every platform's content but, like ctr,
	// unpacks only Platforms (or the host's).
	Platforms    []ocispec.Platform `toml:"platforms" json:"platforms,omitempty"`
	AllPlatforms bool               `toml:"all_platforms" json:"allPlatforms,omitempty"`
	// SkipMissing tolerates manifests absent from the seed for platforms
	// that are not unpacked (k3s imports partial multi-arch archives so).
	SkipMissing bool `toml:"skip_missing" json:"skipMissing,omitempty"`

	// Naming, as ctr images import: BaseName prefixes tag-only names and
	// filters full names; Digests adds <base>@<digest> names;
	// SkipDigestForNamed omits those for images that got a name; IndexName
	// names the seed's whole index.
	BaseName           string `toml:"base_name" json:"baseName,omitempty"`
	Digests            bool   `toml:"digests" json:"digests,omitempty"`
	SkipDigestForNamed bool   `toml:"skip_digest_for_named" json:"skipDigestForNamed,omitempty"`
	IndexName          string `toml:"index_name" json:"indexName,omitempty"`

	// Labels are added to every image record; Pin adds
	// io.cri-containerd.pinned=pinned so kubelet never garbage-collects it.
	Labels map[string]string `toml:"labels" json:"labels,omitempty"`
	Pin    bool              `toml:"pin" json:"pin,omitempty"`
	// DigestRefs records repo@digest beside every repo:tag, as a pull
	// through CRI does (the plugin's digest_refs).
	DigestRefs bool `toml:"digest_refs" json:"digestRefs,omitempty"`
	// PullLabels are added to the records a pull makes (the plugin's
	// provenance of an image list); imports label with their seed.
	PullLabels map[string]string `toml:"pull_labels" json:"-"`

	// LeaseExpiry bounds how long a killed import's lease keeps its
	// partial content alive; default 1h.
	LeaseExpiry time.Duration `toml:"lease_expiry" json:"-"`
	// Concurrency is the number of blobs fetched at once; default 3.
	Concurrency int `toml:"concurrency" json:"-"`
	// UnpackConcurrency is the number of layers applied at once (on
	// snapshotters with the rebase capability); default: the CPU count.
	UnpackConcurrency int `toml:"unpack_concurrency" json:"-"`
	// DiscardUnpackedLayers lets the garbage collector remove layer blobs
	// once they are unpacked (ctr's --discard-unpacked-layers, as CRI's
	// discard_unpacked_layers): the snapshots stay, the content store
	// keeps only manifests and configs. Ignored without unpack.
	DiscardUnpackedLayers bool `toml:"discard_unpacked_layers" json:"discardUnpackedLayers,omitempty"`
	// SyncFs syncs each applied layer's filesystem before its snapshot is
	// committed (ctr's --sync-fs): slower, survives a power cut.
	SyncFs bool `toml:"sync_fs" json:"syncFs,omitempty"`
	// DaemonApply applies layers with the daemon's diff service, as ctr
	// does, even when the snapshots are reachable from this process
	// (which then applies them itself, faster).
	DaemonApply bool `toml:"daemon_apply" json:"daemonApply,omitempty"`
	// Limits cap how far each layer may expand when it is unpacked,
	// whatever its source (seed, registry, or the store already); nil is
	// layerlimit.Default(), as every other zero option is its default. A
	// zero Limits caps nothing.
	Limits *layerlimit.Limits `toml:"layer_limits" json:"layerLimits,omitempty"`
	// Verify checks each image's cosign signatures against trusted keys
	// before anything of it is written; the zero value checks nothing.
	Verify trust.Options `toml:"trust" json:"verify,omitzero"`
	// Observer receives progress; nil means none.
	Observer Observer `toml:"-" json:"-"`
}

// Validate checks the options as New takes them; its errors
// (*setting.Error) name the option's key, which the CLI maps to its flag.
// It parses the verify keys, as New does.
func (o Options) Validate() error {
	_, err := o.policy()
	return err
}

// policy is the one check of the options, and the verify policy they ask
// for (nil: none).
func (o Options) policy() (*trust.Policy, error) {
	if o.NoUnpack && o.DiscardUnpackedLayers {
		return nil, setting.Invalid(o, "DiscardUnpackedLayers", true, "cannot be used without unpacking")
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"Concurrency", o.Concurrency}, {"UnpackConcurrency", o.UnpackConcurrency}} {
		if n.v < 0 {
			return nil, setting.Invalid(o, n.field, n.v, "must be 0 (the default) or more")
		}
	}
	if o.LeaseExpiry < 0 {
		return nil, setting.Invalid(o, "LeaseExpiry", o.LeaseExpiry, "must be 0 (the default) or more")
	}
	if o.Limits != nil {
		if err := o.Limits.Validate(); err != nil {
			return nil, err
		}
	}
	v := o.Verify
	if !v.Enabled() {
		if v.Mode != "" && v.Mode != trust.Always {
			return nil, setting.Invalid(v, "Mode", v.Mode, "asks to verify without verify_keys")
		}
		return nil, nil
	}
	return trust.New(v)
}

const (
	labelPinned     = "io.cri-containerd.pinned"
	labelCRIManaged = "io.cri-containerd.image"
	criNamespace    = "k8s.io"

	defaultLeaseExpiry = time.Hour
	defaultConcurrency = 3
)

// ParsePlatforms parses platform specifiers ("linux/arm64/v8") as ctr does.
func ParsePlatforms(specs []string) ([]ocispec.Platform, error) {
	var out []ocispec.Platform
	for _, s := range specs {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}
