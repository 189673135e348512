package fetcher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Verify checks a whole seed: every blob against its digest and size,
// every blob a manifest references is present, and every layer's diffID
// (decompressing it) against its config, on every platform. It returns one
// error per problem; none means the seed is sound. Layers are read once,
// and refused if they expand beyond limits.
func (s *Seed) Verify(ctx context.Context, limits layerlimit.Limits) []error {
	c := checker{s: s, limits: limits, done: map[digest.Digest]bool{}, diffIDs: map[digest.Digest]digest.Digest{}}
	c.walk(ctx, s.index, "index")
	c.rest(ctx)
	return c.problems
}

type checker struct {
	s        *Seed
	limits   layerlimit.Limits
	done     map[digest.Digest]bool
	diffIDs  map[digest.Digest]digest.Digest // layer → computed diffID ("" when unreadable)
	problems []error
}

func (c *checker) fail(err error) { c.problems = append(c.problems, err) }

// walk checks desc and everything below it.
func (c *checker) walk(ctx context.Context, desc ocispec.Descriptor, parent string) {
	if desc.Size == 0 {
		// containerd's fetch refuses such a descriptor, so import does.
		c.fail(c.s.blobErr(desc.Digest, "referenced by %s with a size of 0: containerd refuses to fetch it", parent))
		c.done[desc.Digest] = true
		return
	}
	if c.done[desc.Digest] {
		c.sameSize(desc, "referenced by "+parent)
		return
	}
	c.done[desc.Digest] = true
	if !c.present(desc.Digest, "referenced by "+parent) {
		return
	}
	switch {
	case images.IsIndexType(desc.MediaType):
		var idx ocispec.Index
		if !c.readJSON(ctx, desc, &idx) {
			return
		}
		for _, m := range idx.Manifests {
			c.walk(ctx, m, desc.Digest.String())
		}
	case images.IsManifestType(desc.MediaType):
		var m ocispec.Manifest
		if !c.readJSON(ctx, desc, &m) {
			return
		}
		c.manifest(ctx, desc, m, desc.Platform != nil && desc.Platform.OS == "unknown")
	default:
		c.blob(ctx, desc)
	}
}

// sameSize checks a second reference to a blob checked already: each
// reference must give the blob's size (the first one was read against it).
func (c *checker) sameSize(desc ocispec.Descriptor, role string) {
	if n, ok := c.s.Has(desc.Digest); ok && n != desc.Size {
		c.fail(c.s.blobErr(desc.Digest, "size mismatch (%s): expected %d bytes, seed has %d", role, desc.Size, n))
	}
}

func (c *checker) readJSON(ctx context.Context, desc ocispec.Descriptor, v any) bool {
	b, err := c.s.ReadBlob(ctx, desc)
	if err != nil {
		c.fail(err)
		return false
	}
	if err := documentMatches(b, desc.MediaType); err != nil {
		c.fail(c.s.blobErr(desc.Digest, "%v", err))
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.fail(c.s.blobErr(desc.Digest, "%s is not valid JSON: %v", desc.MediaType, err))
		return false
	}
	return true
}

// manifest checks a manifest's config and layers. An attestation (an
// index entry for platform unknown/unknown, as buildx writes: in-toto
// layers) is never unpacked, so its layers need not be layer types.
func (c *checker) manifest(ctx context.Context, desc ocispec.Descriptor, m ocispec.Manifest, attestation bool) {
	if c.done[m.Config.Digest] {
		c.sameSize(m.Config, "config of manifest "+desc.Digest.String())
	}
	c.done[m.Config.Digest] = true
	var cfg ocispec.Image
	if c.present(m.Config.Digest, "config of manifest "+desc.Digest.String()) && c.readJSON(ctx, m.Config, &cfg) && images.IsConfigType(m.Config.MediaType) &&
		len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		c.fail(c.s.blobErr(m.Config.Digest, "config lists %d diffIDs, manifest %s has %d layers", len(cfg.RootFS.DiffIDs), desc.Digest, len(m.Layers)))
	}
	for i, l := range m.Layers {
		if l.Size == 0 {
			c.fail(c.s.blobErr(l.Digest, "layer %d of manifest %s has a size of 0: containerd refuses to fetch it", i, desc.Digest))
			continue
		}
		if c.done[l.Digest] {
			c.sameSize(l, fmt.Sprintf("layer %d of manifest %s", i, desc.Digest))
		}
		if !images.IsLayerType(l.MediaType) && images.IsConfigType(m.Config.MediaType) && !attestation {
			// containerd's unpacker counts only layer-typed entries against
			// the diffIDs, so it refuses such an image: say so here.
			c.fail(c.s.blobErr(l.Digest, "manifest %s lists it as layer %d with media type %s, not a layer type: containerd will not unpack the image", desc.Digest, i, l.MediaType))
		}
		if !images.IsLayerType(l.MediaType) || i >= len(cfg.RootFS.DiffIDs) {
			if !c.done[l.Digest] {
				c.done[l.Digest] = true
				c.blob(ctx, l)
			}
			continue
		}
		// A layer shared by several manifests is decompressed once, but
		// checked against each config that lists it.
		got, seen := c.diffIDs[l.Digest]
		if !seen {
			c.done[l.Digest] = true
			c.diffIDs[l.Digest] = ""
			if !c.present(l.Digest, fmt.Sprintf("layer %d of manifest %s", i, desc.Digest)) {
				continue
			}
			var err error
			if got, err = c.s.diffID(ctx, l, c.limits); err != nil {
				c.fail(err)
				continue
			}
			c.diffIDs[l.Digest] = got
		}
		if want := cfg.RootFS.DiffIDs[i]; got != "" && got != want {
			c.fail(c.s.blobErr(l.Digest, "diffID mismatch: config %s expects %s, layer decompresses to %s", m.Config.Digest, want, got))
		}
	}
}

// present reports a blob absent from the seed as missing (unless it is a
// delta seed's, left out on purpose), and one the seed holds but cannot
// serve (a directory, FIFO, device, link out) as that.
func (c *checker) present(d digest.Digest, role string) bool {
	_, err := c.s.blob(d)
	switch {
	case err == nil:
		return true
	case errdefs.IsNotFound(err):
		if _, ok := c.s.Omits(context.Background(), d); ok {
			return false // the node holds it: import takes it from there
		}
		c.fail(c.s.blobErr(d, "missing (%s)", role))
	default:
		c.fail(c.s.blobErr(d, "%s: %w", role, err))
	}
	return false
}

// blob checks one blob's digest and size by reading it.
func (c *checker) blob(ctx context.Context, desc ocispec.Descriptor) {
	rc, err := c.s.Fetch(ctx, desc)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err != nil {
		c.fail(err)
	}
}

// rest checks the blobs no manifest referenced.
func (c *checker) rest(ctx context.Context) {
	var ds []digest.Digest
	for d := range c.s.files {
		ds = append(ds, d)
	}
	names, err := c.s.arch.list("blobs")
	if err != nil {
		c.fail(c.s.errorf("listing blobs: %w", err))
	}
	for _, n := range names {
		if d, ok := digestFromBlobPath(n); ok {
			ds = append(ds, d)
		} else {
			c.fail(c.s.errorf("%s: not a blobs/<algorithm>/<hex> name", n))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		if c.done[d] {
			continue
		}
		c.done[d] = true
		size, _ := c.s.Has(d)
		c.blob(ctx, ocispec.Descriptor{Digest: d, Size: size})
	}
}

// diffID reads a layer once, verifying its digest, and returns the digest
// of its uncompressed content, capped by limits. The content is read as
// containerd's applier reads it: a compressed media type's is sniffed
// (gzip, zstd with or without a leading skippable frame, or plain), a
// plain tar type's is taken as it is.
func (s *Seed) diffID(ctx context.Context, desc ocispec.Descriptor, limits layerlimit.Limits) (digest.Digest, error) {
	lc, capped := limits.Cap(desc)
	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	dec, format, err := layerContent(ctx, desc, br)
	if err != nil {
		// A corrupt blob usually breaks the decompressor first; the
		// digest mismatch is the more useful report, so look for it.
		if _, derr := io.Copy(io.Discard, br); derr != nil {
			return "", derr
		}
		return "", s.blobErr(desc.Digest, "%s layer: %v: %w", format, err, errdefs.ErrDataLoss)
	}
	defer dec.Close()
	dg := digest.Canonical.Digester()
	if capped {
		err = lc.Count(io.TeeReader(dec, dg.Hash()))
	} else {
		_, err = io.Copy(dg.Hash(), dec)
	}
	if errors.Is(err, layerlimit.ErrBomb) {
		return "", s.errorf("%w", err)
	}
	if err != nil {
		if _, derr := io.Copy(io.Discard, br); derr != nil {
			return "", derr
		}
		return "", s.blobErr(desc.Digest, "decompressing %s layer: %v: %w", format, err, errdefs.ErrDataLoss)
	}
	// The decompressor may stop before the end: read the rest so the
	// blob's own digest is still checked.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "", err
	}
	return dg.Digest(), nil
}

// layerContent is the uncompressed content of a layer as containerd's
// applier reads it, and the name of its format.
func layerContent(ctx context.Context, desc ocispec.Descriptor, br *bufio.Reader) (io.ReadCloser, string, error) {
	if c, _ := images.DiffCompression(ctx, desc.MediaType); c == "" {
		return io.NopCloser(br), "tar", nil
	}
	head, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "layer", err
	}
	switch kind := compression.DetectCompression(head); kind {
	case compression.Gzip:
		g, err := gzip.NewReader(br)
		return g, "gzip", err
	case compression.Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(layerlimit.ZstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, "zstd", err
		}
		return z.IOReadCloser(), "zstd", nil
	case compression.Uncompressed:
		return io.NopCloser(br), "tar", nil
	default:
		return nil, "layer", fmt.Errorf("unsupported compression %s", kind.Extension())
	}
}

// documentMatches refuses a manifest whose document is an index or the
// other way round, as containerd's image walk does (its validateMediaType):
// a seed import would refuse it.
func documentMatches(b []byte, mediaType string) error {
	var doc struct {
		MediaType string            `json:"mediaType"`
		Config    json.RawMessage   `json:"config"`
		Layers    []json.RawMessage `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil // the caller's decode says what is wrong
	}
	switch {
	case images.IsManifestType(mediaType) && (len(doc.Manifests) != 0 || images.IsIndexType(doc.MediaType)):
		return fmt.Errorf("described as %s, but the document is an index (mediaType %q)", mediaType, doc.MediaType)
	case images.IsIndexType(mediaType) && (len(doc.Config) != 0 || len(doc.Layers) != 0 || images.IsManifestType(doc.MediaType)):
		return fmt.Errorf("described as %s, but the document is a manifest (mediaType %q)", mediaType, doc.MediaType)
	}
	return nil
}
