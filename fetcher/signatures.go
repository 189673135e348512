package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A cosign signature travels in a seed as an image manifest whose layers
// are simple-signing payloads, each signed in its annotation
// dev.cosignproject.cosign/signature (base64). Which image it is for:
// cosign v2's tag scheme names it REPO:sha256-<hex>.sig (ctr-seed save,
// hauler, zarf keep that name); `cosign save`'s layout marks it
// kind=dev.cosignproject.cosign/sigs beside the one image it saved. The
// payload itself says which digest was signed: that is what is checked.
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	annotationSignature    = "dev.cosignproject.cosign/signature"
)

// The most signatures read for one image (cosign verifies at most 100
// too), and the most bytes of their payloads and signatures, each distinct
// payload counted once (a document's cap): a seed or registry listing one
// payload a hundred times, or many of them, cannot fill the memory of ls,
// import --verify-key or the daemon the plugin runs in.
const (
	MaxSignatures     = 100
	MaxSignatureBytes = MaxJSONSize
)

// Signature is one signed payload a seed carries for an image.
type Signature struct {
	Manifest  digest.Digest // the signature manifest that holds it
	Payload   []byte        // the simple-signing payload, as signed
	Signature []byte        // the raw signature over Payload
}

// SigTag is the tag cosign v2 gives the signatures of d.
func SigTag(d digest.Digest) string { return AttachmentTag(d, "sig") }

// AttachmentTag is the tag cosign v2 gives d's attachment of kind
// suffix: "sig" (signatures), "att" (attestations), "sbom".
func AttachmentTag(d digest.Digest, suffix string) string {
	return d.Algorithm().String() + "-" + d.Encoded() + "." + suffix
}

// AttachmentSuffixes are the kinds of cosign attachment, by tag suffix,
// with the kind annotation a layout marks each with.
var AttachmentSuffixes = map[string]string{"sig": CosignSigs, "att": CosignAtts, "sbom": CosignSboms}

// Attachments are the seed's cosign attachment manifests of the image d:
// its signatures (SignatureManifests), attestations and SBOMs, tagged as
// cosign v2 tags them, or cosign save's untagged entries.
func (s *Seed) Attachments(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	return s.attachments(ctx, d, "sig", "att", "sbom")
}

// attachments are the seed's entries that are d's attachments of any of
// the kinds (tag suffixes), each once, as its index lists them.
func (s *Seed) attachments(ctx context.Context, d digest.Digest, suffixes ...string) ([]ocispec.Descriptor, error) {
	imgs, links, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	var hits []int
	for _, suffix := range suffixes {
		hits = append(hits, links.byTag[AttachmentTag(d, suffix)]...)
		hits = append(hits, links.byKind[suffix]...)
	}
	return targets(imgs, hits), nil
}

// targets are the targets of the entries imgs[i] for i in hits, in index
// order, each digest once.
func targets(imgs []Image, hits []int) []ocispec.Descriptor {
	slices.Sort(hits)
	var out []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, i := range slices.Compact(hits) {
		if d := imgs[i].Target; !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	return out
}

// entryLinks indexes a seed's entries by what makes one an attachment or
// a referrer of an image, built once: an image's lookup is a map access,
// not a walk of every entry (a seed of 50k images took 50k² steps).
type entryLinks struct {
	byTag     map[string][]int // cosign tag (a name's part after its last ':') → entries
	byKind    map[string][]int // tag suffix → unnamed entries of that kind (cosign's layout)
	bySubject map[string][]int // subject annotation → entries
}

// entries are the seed's images and their links, read and built once.
func (s *Seed) entries(ctx context.Context) ([]Image, *entryLinks, error) {
	s.imagesOnce.Do(func() { s.images, s.imagesErr = s.readImages(ctx) })
	s.linksOnce.Do(func() { s.links = linkEntries(s.images) })
	return s.images, s.links, s.imagesErr
}

func linkEntries(imgs []Image) *entryLinks {
	l := &entryLinks{byTag: map[string][]int{}, byKind: map[string][]int{}, bySubject: map[string][]int{}}
	for i, img := range imgs {
		if img.Err != nil {
			continue
		}
		refName := img.Target.Annotations[ocispec.AnnotationRefName]
		for _, n := range append([]string{img.Name, refName}, img.RepoTags...) {
			// HasSuffix(n, ":"+tag) || n == tag, for any tag without ':'.
			tag := n[strings.LastIndex(n, ":")+1:]
			if _, suffix, ok := cutLast(tag, "."); ok && AttachmentSuffixes[suffix] != "" {
				l.byTag[tag] = append(l.byTag[tag], i)
			}
		}
		if k := img.Target.Annotations[AnnotationCosignKind]; k != "" && img.Name == "" && refName == "" {
			for suffix, kind := range AttachmentSuffixes {
				if k == kind || k == "dev.hauler/"+strings.TrimPrefix(kind, "dev.cosignproject.cosign/") {
					l.byKind[suffix] = append(l.byKind[suffix], i)
				}
			}
		}
		if sub := img.Target.Annotations[images.AnnotationManifestSubject]; sub != "" {
			l.bySubject[sub] = append(l.bySubject[sub], i)
		}
	}
	return l
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// Signatures lists the signatures the seed carries for the image d: those
// of every entry tagged SigTag(d), and of cosign save's untagged sigs
// entries. Each payload and signature is read verified and capped.
func (s *Seed) Signatures(ctx context.Context, d digest.Digest) ([]Signature, error) {
	ms, err := s.SignatureManifests(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(ms) > MaxSignatures {
		return nil, s.errorf("image %s: %d signature manifests, more than the %d signatures read for an image: %w", d, len(ms), MaxSignatures, errdefs.ErrInvalidArgument)
	}
	var out []Signature
	budget := newSigBudget(d)
	for _, m := range ms {
		sigs, err := s.signaturesIn(ctx, m, budget)
		if err != nil {
			return nil, err
		}
		out = append(out, sigs...)
	}
	return out, nil
}

// SignatureManifests are the seed's signature manifests for the image d
// (see Signatures), each once, as its index lists them.
func (s *Seed) SignatureManifests(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	return s.attachments(ctx, d, "sig")
}

func (s *Seed) signaturesIn(ctx context.Context, m ocispec.Descriptor, budget *sigBudget) ([]Signature, error) {
	b, err := s.ReadBlob(ctx, m)
	if err != nil {
		return nil, err
	}
	sigs, err := parseSignatures(m.Digest, b, budget, func(l ocispec.Descriptor) ([]byte, error) { return s.ReadBlob(ctx, l) })
	if err != nil {
		return nil, s.blobErr(m.Digest, "signature manifest: %w", err)
	}
	return sigs, nil
}

// parseSignatures reads the cosign signature manifest b (digest m): one
// Signature per simple-signing layer carrying a signature annotation, its
// payload read with read (which verifies and caps it), within budget.
func parseSignatures(m digest.Digest, b []byte, budget *sigBudget, read func(ocispec.Descriptor) ([]byte, error)) ([]Signature, error) {
	var man ocispec.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("not a manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []Signature
	for _, l := range man.Layers {
		enc, ok := l.Annotations[annotationSignature]
		if l.MediaType != MediaTypeSimpleSigning || !ok {
			continue
		}
		if err := budget.count(); err != nil {
			return nil, err
		}
		sig, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("layer %s: not base64: %v: %w", l.Digest, err, errdefs.ErrInvalidArgument)
		}
		payload, err := budget.payload(l, len(sig), read)
		if err != nil {
			return nil, err
		}
		out = append(out, Signature{Manifest: m, Payload: payload, Signature: sig})
	}
	return out, nil
}

// sigBudget is what reading the signatures of one image may still take
// (MaxSignatures, MaxSignatureBytes), and the payloads it has read, so
// that a payload listed again is not read again: its signatures share it.
type sigBudget struct {
	image    digest.Digest
	n        int
	bytes    int64
	payloads map[payloadKey][]byte
}

type payloadKey struct {
	d    digest.Digest
	size int64
}

func newSigBudget(image digest.Digest) *sigBudget {
	return &sigBudget{image: image, payloads: map[payloadKey][]byte{}}
}

// count takes one signature.
func (b *sigBudget) count() error {
	if b.n++; b.n > MaxSignatures {
		return fmt.Errorf("image %s: more than %d signatures (the most read for an image): %w", b.image, MaxSignatures, errdefs.ErrInvalidArgument)
	}
	return nil
}

// payload is l's bytes, read with read unless read before, once sig
// bytes of signature over it and the payload (if new) fit the budget.
func (b *sigBudget) payload(l ocispec.Descriptor, sig int, read func(ocispec.Descriptor) ([]byte, error)) ([]byte, error) {
	k := payloadKey{l.Digest, l.Size}
	p, seen := b.payloads[k]
	b.bytes += int64(sig)
	if !seen {
		b.bytes += max(l.Size, 0)
	}
	if b.bytes > MaxSignatureBytes {
		return nil, fmt.Errorf("image %s: signatures over %d bytes (payloads and signatures, the most read for an image) at payload %s: %w", b.image, MaxSignatureBytes, l.Digest, errdefs.ErrInvalidArgument)
	}
	if seen {
		return p, nil
	}
	p, err := read(l)
	if err != nil {
		return nil, fmt.Errorf("payload %s: %w", l.Digest, err)
	}
	b.payloads[k] = p
	return p, nil
}

// Signatures lists the signatures of the image name (digest d) that the
// seeds carry, else that the registry holds under cosign's tag for d
// (fetched verified, each document capped); none is no error.
func (r *Resolver) Signatures(ctx context.Context, name string, d digest.Digest) ([]Signature, error) {
	for _, s := range r.seeds {
		sigs, err := s.Signatures(ctx, d)
		if err != nil || len(sigs) > 0 {
			return sigs, err
		}
	}
	if r.remote == nil {
		return nil, nil
	}
	q, err := parseQuery(name)
	if err != nil {
		return nil, err
	}
	tagged := q.repo + ":" + SigTag(d)
	_, m, err := r.remote.Resolve(ctx, tagged)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signatures %s: %w", tagged, err)
	}
	f, err := r.remote.Fetcher(ctx, tagged)
	if err != nil {
		return nil, err
	}
	b, err := fetchDocument(ctx, f, m)
	if err != nil {
		return nil, fmt.Errorf("signatures %s: %w", tagged, err)
	}
	sigs, err := parseSignatures(m.Digest, b, newSigBudget(d), func(l ocispec.Descriptor) ([]byte, error) { return fetchDocument(ctx, f, l) })
	if err != nil {
		return nil, fmt.Errorf("signatures %s: %w", tagged, err)
	}
	return sigs, nil
}

// fetchDocument fetches a small blob, verified against desc, capped.
func fetchDocument(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxJSONSize {
		return nil, fmt.Errorf("blob %s: %d bytes exceeds the %d byte cap for documents: %w", desc.Digest, desc.Size, MaxJSONSize, errdefs.ErrInvalidArgument)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	v := newVerifier(rc, rc, "registry", desc.Digest, desc.Size)
	return io.ReadAll(io.LimitReader(v, MaxJSONSize+1))
}

// Referrers are the seed's top-level entries that are OCI 1.1 referrers
// of d (containerd's exporter marks them with the subject annotation).
func (s *Seed) Referrers(ctx context.Context, d digest.Digest) ([]ocispec.Descriptor, error) {
	imgs, links, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, i := range links.bySubject[d.String()] {
		out = append(out, imgs[i].Target)
	}
	return out, nil
}
