package importer

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// refSource is how containerd's transfer import marks an index entry whose
// names come from its annotations.
const refSource = "io.containerd.import.ref-source"

// namer is containerd's own transfer image store, configured the way
// `ctr images import` configures it, so names are identical to ctr's.
func (im *Importer) namer(ctx context.Context) *image.Store {
	prefix, overwrite := im.opts.BaseName, false
	if prefix == "" {
		prefix, overwrite = fmt.Sprintf("import-%s", time.Now().Format("2006-01-02")), true
	}
	opts := []image.StoreOpt{image.WithImageLabels(im.imageLabels(ctx))}
	if im.opts.Digests {
		opts = append(opts, image.WithDigestRef(prefix, overwrite, !im.opts.SkipDigestForNamed))
	} else {
		opts = append(opts, image.WithNamedPrefix(prefix, overwrite))
	}
	return image.NewStore(im.opts.IndexName, opts...)
}

// recordEntry creates the records for one top-level index entry; no name
// is not an error (ctr skips such entries too).
func (im *Importer) recordEntry(ctx context.Context, st *image.Store, desc ocispec.Descriptor) ([]string, error) {
	desc.Annotations = maps.Clone(desc.Annotations)
	if desc.Annotations == nil {
		desc.Annotations = map[string]string{}
	}
	desc.Annotations[refSource] = "annotation"
	return im.store(ctx, st, desc)
}

func (im *Importer) store(ctx context.Context, st *image.Store, desc ocispec.Descriptor) ([]string, error) {
	imgs, err := st.Store(ctx, desc, keepLabels{im.client.ImageService()})
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("creating image records: %w", err)
	}
	names := make([]string, len(imgs))
	for i, img := range imgs {
		names[i] = img.Name
	}
	return names, nil
}

// record creates or updates one named image (pull).
func (im *Importer) record(ctx context.Context, name string, desc ocispec.Descriptor) error {
	is := keepLabels{im.client.ImageService()}
	img := images.Image{Name: name, Target: desc, Labels: im.imageLabels(ctx)}
	for {
		if _, err := is.Create(ctx, img); err == nil {
			return nil
		} else if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("creating image %s: %w", name, err)
		}
		if _, err := is.Update(ctx, img); err == nil {
			return nil
		} else if !errdefs.IsNotFound(err) {
			return fmt.Errorf("updating image %s: %w", name, err)
		}
	}
}

// keepLabels updates an existing image without dropping its labels: a
// re-import (by the CLI, the plugin, or ctr-seed pull) must not unpin an
// image the plugin or an operator pinned, nor strip another tool's labels.
// containerd's image store replaces the whole record otherwise.
type keepLabels struct{ images.Store }

func (k keepLabels) Update(ctx context.Context, img images.Image, fieldpaths ...string) (images.Image, error) {
	if old, err := k.Store.Get(ctx, img.Name); err == nil && len(old.Labels) > 0 {
		labels := maps.Clone(old.Labels)
		maps.Copy(labels, img.Labels)
		img.Labels = labels
	}
	return k.Store.Update(ctx, img, fieldpaths...)
}
