package importer

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/ctr-seed/ctr-seed/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// labelSignature prefixes the GC references from an image's target to the
// signature manifests the seed carried for it.
const labelSignature = "containerd.io/gc.ref.content.ctr-seed.sig."

// keepSignatures writes the seed's cosign attachments (signatures,
// attestations, SBOMs) and OCI 1.1 referrers of the image desc (and their payloads) into the content store,
// verified, and references
// them from desc's blob with GC labels: they stay while the image does and
// go with it, and no image record is made for them (none to clutter
// crictl images). It runs before the image's records.
func (im *Importer) keepSignatures(ctx context.Context, s *fetcher.Seed, f remotes.Fetcher, desc ocispec.Descriptor) (int, error) {
	ms, err := s.Attachments(ctx, desc.Digest)
	if err != nil {
		return 0, err
	}
	refs, err := s.Referrers(ctx, desc.Digest)
	if err != nil {
		return 0, err
	}
	ms = append(ms, refs...)
	if len(ms) == 0 {
		return 0, nil
	}
	cs := im.svc.Content
	h := images.Handlers(im.fetchHandler(f), images.SetChildrenMappedLabels(cs, images.ChildrenHandler(cs), nil))
	info := content.Info{Digest: desc.Digest, Labels: map[string]string{}}
	var paths []string
	for i, m := range ms {
		m.Annotations, m.Platform = nil, nil
		if err := images.Dispatch(ctx, h, nil, m); err != nil {
			return 0, fmt.Errorf("signature manifest %s: %w", m.Digest, err)
		}
		k := fmt.Sprintf("%s%d", labelSignature, i)
		info.Labels[k] = m.Digest.String()
		paths = append(paths, "labels."+k)
	}
	if _, err := cs.Update(ctx, info, paths...); err != nil {
		return 0, fmt.Errorf("referencing its signatures: %w", err)
	}
	return len(ms), nil
}
