package fetcher

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type guardAtApplyKey struct{}

// GuardAtApply marks ctx so that seeds serve layers without the fetch-time
// decompression-bomb guard: the caller applies the layers itself and
// enforces LayerCap while it decompresses them, so each layer is
// decompressed once, not twice.
func GuardAtApply(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardAtApplyKey{}, true)
}

func guardedAtApply(ctx context.Context) bool {
	v, _ := ctx.Value(guardAtApplyKey{}).(bool)
	return v
}

// LayerCap returns the most bytes the layer desc may expand to, and the
// error for a layer that went past it (counted bytes out), under the
// limits of the seed holding desc. A layer no seed holds (from the
// registry) gets the first seed's limits, or the defaults. ok is false
// when desc is not a layer the applier decompresses, or nothing caps it.
func (ss Seeds) LayerCap(desc ocispec.Descriptor) (limit int64, exceeded func(counted int64) error, ok bool) {
	if layer, _ := applierDecompresses(desc); !layer {
		return 0, nil, false
	}
	limits, name := defaultLayerLimits, "registry blob"
	if s, err := ss.find(desc); err == nil {
		limits, name = s.limits, "seed "+s.path+": blob"
	} else if len(ss) > 0 {
		limits = ss[0].limits
	}
	return limits.capOf(desc, name)
}

// RegistryLayerCap is LayerCap for layers from the registry under the
// given limits (what WithLayerLimits and WithMaxLayerBytes take), so a
// pull with no seed is capped as asked, not by the defaults.
func RegistryLayerCap(ratio int, allowance, maxBytes int64) func(ocispec.Descriptor) (int64, func(int64) error, bool) {
	l := layerLimits{ratio: max(ratio, 0), allowance: max(allowance, 0), maxBytes: max(maxBytes, 0)}
	return func(desc ocispec.Descriptor) (int64, func(int64) error, bool) {
		if layer, _ := applierDecompresses(desc); !layer {
			return 0, nil, false
		}
		return l.capOf(desc, "registry blob")
	}
}

func (l layerLimits) capOf(desc ocispec.Descriptor, name string) (int64, func(int64) error, bool) {
	limit, ok := l.limit(desc.Size)
	if !ok {
		return 0, nil, false
	}
	return limit, func(counted int64) error {
		return fmt.Errorf("%s %s: decompression bomb: expands beyond %d bytes (ratio %d:1 of %d compressed): %w",
			name, desc.Digest, limit, counted/max(desc.Size, 1), desc.Size, errdefs.ErrInvalidArgument)
	}, true
}

// FetchLayerForApply streams a layer's bytes as the seed holds them, size
// checked but not hashed again: for the applier, after the same blob was
// verified on its way into the content store, and whose output is checked
// against the layer's diffID (so altered bytes cannot go unnoticed). The
// bomb cap is the applier's (LayerCap).
func (ss Seeds) FetchLayerForApply(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := ss.find(desc)
	if err != nil {
		return nil, err
	}
	return s.fetchRaw(desc)
}
