package seeddir

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer"
)

// labelPinned is CRI's pin: kubelet's image GC never removes such images.
const labelPinned = "io.cri-containerd.pinned"

// seedGone is told that the seed name left the directory. Its images stay
// (removing a seed file never removes images); with prune = true they are
// unpinned, so that kubelet's image GC may collect them once no pod uses
// them. An image is labelled with the seed that last brought it; one that
// another present seed brings too stays pinned, and is labelled with that
// seed instead (so that its leaving unpins it).
func (s *Service) seedGone(ctx context.Context, name string) {
	if isImageList(name) {
		s.stopList(name)
	}
	if !s.cfg.Prune {
		return
	}
	lg := log.G(ctx).WithField("seed", name)
	is := s.client.ImageService()
	imgs, err := is.List(ctx, fmt.Sprintf("labels.%q==%q", importer.LabelSeed, name))
	if err != nil {
		lg.WithError(err).Warn("prune: listing the seed's images")
		return
	}
	for _, img := range imgs {
		if _, ok := img.Labels[labelPinned]; !ok {
			continue
		}
		if other, rec, ok := s.state.bringing(img.Name, name); ok {
			img.Labels[importer.LabelSeed] = other
			paths := []string{"labels." + importer.LabelSeed, "labels." + importer.LabelSeedVersion}
			if rec.Version != "" {
				img.Labels[importer.LabelSeedVersion] = rec.Version
			} else {
				delete(img.Labels, importer.LabelSeedVersion) // a state of an older ctr-seed: unknown
			}
			if _, err := is.Update(ctx, images.Image{Name: img.Name, Labels: img.Labels}, paths...); err != nil {
				lg.WithField("image", img.Name).WithError(err).Warn("prune: relabelling")
				continue
			}
			lg.WithField("image", img.Name).WithField("brought_by", other).Info("seed gone: image kept pinned, another seed brings it")
			continue
		}
		delete(img.Labels, labelPinned)
		if _, err := is.Update(ctx, images.Image{Name: img.Name, Labels: img.Labels}, "labels."+labelPinned); err != nil {
			lg.WithField("image", img.Name).WithError(err).Warn("prune: unpinning")
			continue
		}
		lg.WithField("image", img.Name).Info("seed gone: image unpinned (prune = true)")
	}
}
