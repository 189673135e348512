package fetcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// loadLayout reads an OCI image layout: oci-layout, index.json, and blobs
// under blobs/<alg>/<hex>, which are looked up by digest when asked for.
// An OCI layout without its oci-layout file (hauler's `store save
// --containerd` drops it; containerd's importer reads such archives) is
// read as version 1.0.0.
func (s *Seed) loadLayout(ctx context.Context) error {
	b, err := s.readFile(ocispec.ImageLayoutFile)
	if errdefs.IsNotFound(err) {
		b, err = []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`), nil
	}
	if err != nil {
		return s.errorf("%w", err)
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(b, &layout); err != nil {
		return s.errorf("%s: %v: %w", ocispec.ImageLayoutFile, err, errdefs.ErrInvalidArgument)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return s.errorf("%s: unsupported layout version %q (want %q): %w", ocispec.ImageLayoutFile, layout.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
	}
	b, err = s.readFile(ocispec.ImageIndexFile)
	if err != nil {
		return s.errorf("%w", err)
	}
	if err := checkIndex(b); err != nil {
		return s.errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	d := digest.FromBytes(b)
	s.mem[d] = b
	s.index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: d, Size: int64(len(b))}
	// docker save (v25+) writes an OCI layout plus manifest.json; its
	// RepoTags are the last resort for names.
	if b, err := s.readFile(dockerManifestFile); err == nil {
		mfsts, err := parseDockerManifest(b)
		if err != nil {
			return s.errorf("%s: %w", dockerManifestFile, err)
		}
		for _, m := range mfsts {
			cfg, ok := digestFromBlobPath(m.Config)
			if !ok {
				continue
			}
			for _, t := range m.RepoTags {
				s.repoTags = append(s.repoTags, repoTag{name: t, config: cfg})
			}
		}
	}
	return nil
}

// checkIndex parses an index strictly enough to refuse what containerd
// would choke on later: bad JSON, bad digests, negative sizes.
func checkIndex(b []byte) error {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("not a valid image index: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if idx.SchemaVersion != 2 {
		return fmt.Errorf("schemaVersion %d, want 2: %w", idx.SchemaVersion, errdefs.ErrInvalidArgument)
	}
	for i, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return fmt.Errorf("manifests[%d]: invalid digest %q: %v: %w", i, m.Digest, err, errdefs.ErrInvalidArgument)
		}
		if m.Size < 0 {
			return fmt.Errorf("manifests[%d]: negative size %d: %w", i, m.Size, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// digestFromBlobPath reads the digest from a blobs/<alg>/<hex> path.
func digestFromBlobPath(p string) (digest.Digest, bool) {
	name, ok := cleanName(p)
	if !ok {
		return "", false
	}
	rest, ok := strings.CutPrefix(name, "blobs/")
	if !ok {
		return "", false
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}
