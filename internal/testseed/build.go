package testseed

import (
	"encoding/json"
	"fmt"
	"slices"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image describes a single-platform image to render with Build.
type Image struct {
	Name     string           // full reference, e.g. "docker.io/library/demo:1.0"; may be ""
	Platform ocispec.Platform // empty OS/Architecture default to linux/amd64
	Layers   []Layer
	Docker   bool // docker schema 2 media types instead of OCI ones
	// Config is copied into the image config. It is the only part of the
	// config callers control; everything else is derived so it stays
	// consistent with the layers.
	Config ocispec.ImageConfig
}

// Built is an image rendered to blobs.
type Built struct {
	Name     string             // Image.Name, carried along for writers and tests
	Manifest ocispec.Descriptor // with Platform set
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor // compressed (as stored) descriptors
	DiffIDs  []digest.Digest
	Blobs    map[digest.Digest][]byte // every blob: config, layers, manifest
	// Uncompressed holds each layer's tar keyed by DiffID. The docker-save
	// format stores layers uncompressed, so its writer needs these bytes
	// even when the registry-style blobs are gzip or zstd.
	Uncompressed map[digest.Digest][]byte
}

// Build renders img into content-addressed blobs. The result depends only
// on img, so two calls with equal inputs yield identical digests.
func Build(img Image) (*Built, error) {
	plat := defaultPlatform(img.Platform)
	b := &Built{
		Name:         img.Name,
		Blobs:        map[digest.Digest][]byte{},
		Uncompressed: map[digest.Digest][]byte{},
		Layers:       []ocispec.Descriptor{},
		DiffIDs:      []digest.Digest{},
	}
	history := make([]ocispec.History, 0, len(img.Layers))
	for i, l := range img.Layers {
		raw, err := layerTar(l.Files)
		if err != nil {
			return nil, fmt.Errorf("testseed: layer %d: %w", i, err)
		}
		mt, err := layerMediaType(l.Compression, img.Docker)
		if err != nil {
			return nil, fmt.Errorf("testseed: layer %d: %w", i, err)
		}
		blob, err := compressBytes(raw, l.Compression)
		if err != nil {
			return nil, fmt.Errorf("testseed: layer %d: %w", i, err)
		}
		diffID := digest.FromBytes(raw)
		desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
		b.Layers = append(b.Layers, desc)
		b.DiffIDs = append(b.DiffIDs, diffID)
		b.Blobs[desc.Digest] = blob
		b.Uncompressed[diffID] = raw
		created := FixedTime
		history = append(history, ocispec.History{
			Created:   &created,
			CreatedBy: fmt.Sprintf("testseed layer %d (%d entries, %s)", i, len(l.Files), l.Compression),
		})
	}

	created := FixedTime
	cfg := ocispec.Image{
		Created:  &created,
		Author:   "testseed",
		Platform: plat,
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: b.DiffIDs},
		History:  history,
	}
	cfgMT, mfMT := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if img.Docker {
		cfgMT, mfMT = MediaTypeDockerConfig, MediaTypeDockerManifest
	}
	var err error
	if b.Config, err = addJSON(b.Blobs, cfgMT, cfg); err != nil {
		return nil, err
	}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mfMT,
		Config:    b.Config,
		Layers:    b.Layers,
	}
	if b.Manifest, err = addJSON(b.Blobs, mfMT, mf); err != nil {
		return nil, err
	}
	b.Manifest.Platform = &plat
	return b, nil
}

// MultiPlatform groups images into one image index. Each child keeps its
// own Docker flag, so tests can mix media types inside one index if they
// want to; Docker here only selects the index's own media type.
type MultiPlatform struct {
	Name   string
	Images []Image
	Docker bool // docker manifest list media type instead of OCI index
}

// BuildIndex renders every child with Build and an index pointing at their
// manifests (each entry carrying its platform). The returned blobs contain
// the index and all child blobs, ready for Seed.Add; the index descriptor
// has no platform, as an index describes many.
func BuildIndex(mp MultiPlatform) (ocispec.Descriptor, map[digest.Digest][]byte, []*Built, error) {
	blobs := map[digest.Digest][]byte{}
	children := make([]*Built, 0, len(mp.Images))
	manifests := make([]ocispec.Descriptor, 0, len(mp.Images))
	for i, img := range mp.Images {
		c, err := Build(img)
		if err != nil {
			return ocispec.Descriptor{}, nil, nil, fmt.Errorf("testseed: index child %d: %w", i, err)
		}
		children = append(children, c)
		manifests = append(manifests, c.Manifest)
		for d, p := range c.Blobs {
			blobs[d] = p
		}
	}
	mt := ocispec.MediaTypeImageIndex
	if mp.Docker {
		mt = MediaTypeDockerManifestList
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mt,
		Manifests: manifests,
	}
	desc, err := addJSON(blobs, mt, idx)
	if err != nil {
		return ocispec.Descriptor{}, nil, nil, err
	}
	return desc, blobs, children, nil
}

// defaultPlatform fills in linux/amd64 and copies slices so the returned
// value (whose address ends up in descriptors) never aliases the caller's.
func defaultPlatform(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = "amd64"
	}
	p.OSFeatures = slices.Clone(p.OSFeatures)
	return p
}

// layerMediaType picks the media type registries and containerd expect.
// Docker schema 2 has no zstd layer type, so zstd layers keep the OCI one
// even in docker manifests, as buildkit does.
func layerMediaType(c Compression, docker bool) (string, error) {
	switch c {
	case Uncompressed:
		if docker {
			return MediaTypeDockerLayer, nil
		}
		return ocispec.MediaTypeImageLayer, nil
	case Gzip:
		if docker {
			return MediaTypeDockerLayerGzip, nil
		}
		return ocispec.MediaTypeImageLayerGzip, nil
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return "", fmt.Errorf("unknown compression %v", c)
}

// addJSON stores v's JSON encoding as a blob and returns its descriptor.
// encoding/json sorts map keys, so the bytes are deterministic.
func addJSON(blobs map[digest.Digest][]byte, mediaType string, v any) (ocispec.Descriptor, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("testseed: marshal %s: %w", mediaType, err)
	}
	d := digest.FromBytes(p)
	blobs[d] = p
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(p))}, nil
}
