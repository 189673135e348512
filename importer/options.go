package importer

import (
	"fmt"
	"time"

	"github.com/containerd/platforms"

	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options are the knobs of an import or pull, named after ctr's flags.
type Options struct {
	// Snapshotter to unpack into; "" is containerd's default (overlayfs).
	Snapshotter string
	// NoUnpack stores content and records only.
	NoUnpack bool
	// Platforms whose content is imported and unpacked; none means the
	// host's. AllPlatforms imports every platform's content but, like ctr,
	// unpacks only Platforms (or the host's).
	Platforms    []ocispec.Platform
	AllPlatforms bool
	// SkipMissing tolerates manifests absent from the seed for platforms
	// that are not unpacked (k3s imports partial multi-arch archives so).
	SkipMissing bool

	// Naming, as ctr images import: BaseName prefixes tag-only names and
	// filters full names; Digests adds <base>@<digest> names;
	// SkipDigestForNamed omits those for images that got a name; IndexName
	// names the seed's whole index.
	BaseName           string
	Digests            bool
	SkipDigestForNamed bool
	IndexName          string

	// Labels are added to every image record; Pin adds
	// io.cri-containerd.pinned=pinned so kubelet never garbage-collects it.
	Labels map[string]string
	Pin    bool
	// DigestRefs records repo@digest beside every repo:tag, as a pull
	// through CRI does (the plugin's digest_refs).
	DigestRefs bool
	// PullLabels are added to the records a pull makes (the plugin's
	// provenance of an image list); imports label with their seed.
	PullLabels map[string]string

	// LeaseExpiry bounds how long a killed import's lease keeps its
	// partial content alive; default 1h.
	LeaseExpiry time.Duration
	// Concurrency is the number of blobs fetched at once; default 3.
	Concurrency int
	// UnpackConcurrency is the number of layers applied at once (on
	// snapshotters with the rebase capability); default: the CPU count.
	UnpackConcurrency int
	// DiscardUnpackedLayers lets the garbage collector remove layer blobs
	// once they are unpacked (ctr's --discard-unpacked-layers, as CRI's
	// discard_unpacked_layers): the snapshots stay, the content store
	// keeps only manifests and configs. Ignored without unpack.
	DiscardUnpackedLayers bool
	// SyncFs syncs each applied layer's filesystem before its snapshot is
	// committed (ctr's --sync-fs): slower, survives a power cut.
	SyncFs bool
	// DaemonApply applies layers with the daemon's diff service, as ctr
	// does, even when the snapshots are reachable from this process
	// (which then applies them itself, faster).
	DaemonApply bool
	// Limits cap how far each layer may expand when it is unpacked,
	// whatever its source (seed, registry, or the store already); the zero
	// value caps nothing: start from layerlimit.Default().
	Limits layerlimit.Limits
	// Verify checks each image's cosign signatures against trusted keys
	// before anything of it is written; the zero value checks nothing.
	Verify trust.Options
	// Observer receives progress; nil means none.
	Observer Observer
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
