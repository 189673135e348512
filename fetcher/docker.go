package fetcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const dockerManifestFile = "manifest.json"

// dockerManifest is one entry of a docker save manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func parseDockerManifest(b []byte) ([]dockerManifest, error) {
	var mfsts []dockerManifest
	if err := json.Unmarshal(b, &mfsts); err != nil {
		return nil, fmt.Errorf("not a docker manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(mfsts) == 0 {
		return nil, fmt.Errorf("lists no images: %w", errdefs.ErrInvalidArgument)
	}
	return mfsts, nil
}

// Limits on what a manifest.json may ask for, so that a small file cannot
// make a huge index (each tag is an index entry) or manifest. Docker itself
// stops at 128 layers.
const (
	maxDockerTags   = 10000
	maxDockerLayers = 1000
)

func checkDockerLimits(mfsts []dockerManifest) error {
	tags := 0
	for i, m := range mfsts {
		tags += max(len(m.RepoTags), 1)
		if len(m.Layers) > maxDockerLayers {
			return fmt.Errorf("entry %d lists %d layers (at most %d): %w", i, len(m.Layers), maxDockerLayers, errdefs.ErrInvalidArgument)
		}
	}
	if tags > maxDockerTags {
		return fmt.Errorf("%d images and tags (at most %d): %w", tags, maxDockerTags, errdefs.ErrInvalidArgument)
	}
	return nil
}

// dockerSchema2 is the manifest containerd's importer writes for a docker
// save entry; the field order and types keep its bytes (and so its digest)
// identical to what `ctr images import` produces.
type dockerSchema2 struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
}

// loadDocker maps a docker save tarball to an OCI index of Docker schema2
// manifests the way containerd's core/images/archive.ImportIndex does.
func (s *Seed) loadDocker(ctx context.Context) error {
	b, err := s.readFile(dockerManifestFile)
	if err != nil {
		return s.errorf("%w", err)
	}
	mfsts, err := parseDockerManifest(b)
	if err != nil {
		return s.errorf("%s: %w", dockerManifestFile, err)
	}
	if err := checkDockerLimits(mfsts); err != nil {
		return s.errorf("%s: %w", dockerManifestFile, err)
	}
	layers := map[string]ocispec.Descriptor{} // a layer listed again is not hashed again
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}}
	for i, m := range mfsts {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, err := s.dockerImage(ctx, m, layers)
		if err != nil {
			return s.errorf("%s entry %d: %w", dockerManifestFile, i, err)
		}
		if len(m.RepoTags) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
			continue
		}
		for _, t := range m.RepoTags {
			named, err := distref.ParseDockerRef(t)
			if err != nil {
				return s.errorf("%s entry %d: repo tag %q: %v: %w", dockerManifestFile, i, t, err, errdefs.ErrInvalidArgument)
			}
			d := desc
			d.Annotations = map[string]string{
				images.AnnotationImageName: named.String(),
				ocispec.AnnotationRefName:  ociRefName(named.String()),
			}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	s.index = s.putJSON(idx, ocispec.MediaTypeImageIndex)
	return nil
}

func (s *Seed) dockerImage(ctx context.Context, m dockerManifest, seen map[string]ocispec.Descriptor) (ocispec.Descriptor, error) {
	if m.Config == "" {
		return ocispec.Descriptor{}, fmt.Errorf("manifest.json entry %v has no Config: %w", m.RepoTags, errdefs.ErrInvalidArgument)
	}
	cfgName, ok := cleanName(m.Config)
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("config path %q leaves the archive: %w", m.Config, errdefs.ErrInvalidArgument)
	}
	cb, err := s.readFile(cfgName)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %v: %w", cfgName, err, errdefs.ErrInvalidArgument)
	}
	cfgDesc := ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2Config, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	s.files[cfgDesc.Digest] = cfgName

	layers := make([]ocispec.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		var diffID digest.Digest
		if len(m.Layers) == len(cfg.RootFS.DiffIDs) {
			diffID = cfg.RootFS.DiffIDs[i]
		}
		if d, ok := seen[l]; ok && (diffID == "" || d.Digest == diffID || d.MediaType != images.MediaTypeDockerSchema2Layer) {
			layers[i] = d
			continue
		}
		if layers[i], err = s.dockerLayer(l, diffID); err != nil {
			return ocispec.Descriptor{}, err
		}
		seen[l] = layers[i]
	}
	desc := s.putJSON(dockerSchema2{SchemaVersion: 2, MediaType: images.MediaTypeDockerSchema2Manifest, Config: cfgDesc, Layers: layers}, images.MediaTypeDockerSchema2Manifest)
	p := platforms.Normalize(cfg.Platform)
	if p.OS == "windows" && p.OSVersion == "" {
		p.OSVersion = platforms.DefaultSpec().OSVersion
	}
	desc.Platform = &p
	return desc, nil
}

// dockerLayer describes one layer file. Its digest comes, in order of
// cost, from a blobs/<alg>/<hex> name, from the config's diffID when the
// file is an uncompressed tar (then the two are the same by definition),
// or from hashing the file. Whichever it is, it is verified when served.
func (s *Seed) dockerLayer(name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	clean, ok := cleanName(name)
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("layer path %q leaves the archive: %w", name, errdefs.ErrInvalidArgument)
	}
	f, err := s.arch.lookup(clean)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layer: %w", err)
	}
	ra, closer, err := f.open()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layer: %w", err)
	}
	defer closer.Close()
	head := make([]byte, 10)
	n, err := ra.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return ocispec.Descriptor{}, fmt.Errorf("layer %s: %w", clean, err)
	}
	// Same media types as containerd's detectLayerMediaType, for parity.
	desc := ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2LayerGzip, Size: f.size}
	uncompressed := n == 0 || compression.DetectCompression(head[:n]) == compression.Uncompressed
	if uncompressed {
		desc.MediaType = images.MediaTypeDockerSchema2Layer
	}
	switch d, ok := digestFromBlobPath(clean); {
	case ok:
		desc.Digest = d
	case uncompressed && diffID.Validate() == nil:
		desc.Digest = diffID
	default:
		dg := digest.Canonical.Digester()
		if _, err := io.Copy(dg.Hash(), io.NewSectionReader(ra, 0, f.size)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s: %w", clean, err)
		}
		desc.Digest = dg.Digest()
	}
	s.files[desc.Digest] = clean
	return desc, nil
}

// putJSON keeps a synthesized document in memory and describes it.
func (s *Seed) putJSON(v any, mediaType string) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	d := digest.FromBytes(b)
	s.mem[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// ociRefName is what containerd puts in org.opencontainers.image.ref.name
// for a docker RepoTag: the tag alone, or the full name when pinned by digest.
func ociRefName(name string) string {
	if spec, err := reference.Parse(name); err == nil && spec.Object != "" && spec.Object[0] != '@' {
		return spec.Object
	}
	return name
}
