// Package layerlimit is ctr-seed's one decompression-bomb policy: how far
// a layer may expand when it is decompressed, the one error for a layer
// that goes further, and the readers that enforce it. containerd's
// appliers decompress a layer with no bound on what comes out, so a few KB
// of gzip in a seed (or from a registry) could fill the snapshotter's disk.
//
// The importer owns where the policy is enforced (while it applies a
// layer, or before it hands one to the daemon); verify uses it too. The
// CLI, the plugin, serve and the --in-daemon service only carry a Limits.
package layerlimit

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/setting"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// DefaultRatio is how many times its compressed size a layer may
	// expand to (above DefaultAllowance).
	DefaultRatio = 200
	// DefaultAllowance is what any layer may expand to, whatever its
	// ratio: small zero-filled layers are fine.
	DefaultAllowance int64 = 1 << 30
)

// Limits caps a layer's uncompressed size: beyond
// max(Ratio × compressed, Allowance) when Ratio > 0, and beyond MaxBytes
// when MaxBytes > 0. The zero value caps nothing.
type Limits struct {
	Ratio     int   `toml:"max_layer_ratio" json:"ratio"`
	Allowance int64 `toml:"layer_allowance" json:"allowance"`
	MaxBytes  int64 `toml:"max_layer_bytes" json:"maxBytes"`
}

// Default is the cap every command and the plugin start from.
func Default() Limits { return Limits{Ratio: DefaultRatio, Allowance: DefaultAllowance} }

// Validate refuses negative values; its errors (*setting.Error) name
// the key ("max_layer_ratio"), which the CLI maps to its flag.
func (l Limits) Validate() error {
	if l.Ratio < 0 {
		return setting.Invalid(l, "Ratio", l.Ratio, "must be 0 (no cap) or more")
	}
	if l.MaxBytes < 0 {
		return setting.Invalid(l, "MaxBytes", l.MaxBytes, "must be 0 (no cap) or more")
	}
	if l.Allowance < 0 {
		return setting.Invalid(l, "Allowance", l.Allowance, "must be 0 or more")
	}
	return nil
}

// max is the most a layer of the given compressed size may expand to; ok
// is false when nothing caps it.
func (l Limits) max(compressed int64) (n int64, ok bool) {
	n = math.MaxInt64
	if l.Ratio > 0 {
		r := int64(math.MaxInt64)
		if compressed <= math.MaxInt64/int64(l.Ratio) {
			r = compressed * int64(l.Ratio)
		}
		n, ok = max(r, l.Allowance), true
	}
	if l.MaxBytes > 0 && l.MaxBytes < n {
		n, ok = l.MaxBytes, true
	}
	return n, ok
}

// Cap is the cap of one layer.
type Cap struct {
	Layer      digest.Digest
	Compressed int64 // the blob's size
	Max        int64 // the most its content may expand to
	// Sniffed is true when containerd's applier sniffs the content for
	// gzip or zstd (the media type is a compressed layer type, or docker's
	// plain one); false when it takes the content as a tar as it is.
	Sniffed bool
}

// Cap returns the cap of desc; ok is false when desc is not a layer
// containerd applies as a tar, or when nothing caps it.
func (l Limits) Cap(desc ocispec.Descriptor) (Cap, bool) {
	if !images.IsLayerType(desc.MediaType) {
		return Cap{}, false
	}
	c, err := images.DiffCompression(context.Background(), desc.MediaType)
	if err != nil {
		return Cap{}, false // not a tar layer containerd applies (e.g. erofs)
	}
	n, ok := l.max(desc.Size)
	if !ok {
		return Cap{}, false
	}
	return Cap{Layer: desc.Digest, Compressed: desc.Size, Max: n, Sniffed: c != ""}, true
}

// ErrBomb is matched (errors.Is) by every error of a layer past its cap.
var ErrBomb = errors.New("decompression bomb")

// Exceeded is the one error for a layer whose content went past the cap
// (counted bytes out, at least); it is ErrBomb and
// errdefs.ErrInvalidArgument.
func (c Cap) Exceeded(counted int64) error {
	return fmt.Errorf("layer %s: %w: expands beyond %d bytes (ratio %d:1 of %d compressed): %w",
		c.Layer, ErrBomb, c.Max, counted/max(c.Compressed, 1), c.Compressed, errdefs.ErrInvalidArgument)
}
