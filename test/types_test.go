package test

import (
	"encoding/json"
	"io"
	"maps"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type (
	ioWriter     = io.Writer
	snapshotInfo = snapshots.Info
)

type digestKey = digest.Digest

// indexFromBuilt puts already built images into one OCI index.
func indexFromBuilt(imgs ...*testseed.Built) (ocispec.Descriptor, map[digest.Digest][]byte, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	blobs := map[digest.Digest][]byte{}
	for _, b := range imgs {
		idx.Manifests = append(idx.Manifests, b.Manifest)
		maps.Copy(blobs, b.Blobs)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	blobs[d.Digest] = raw
	return d, blobs, nil
}
