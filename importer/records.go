package importer

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Provenance labels on every image a seed brings: which seed file, which
// version of it (the digest of its index document: the same for every
// copy of the seed, another for any other seed), as k3s labels its
// imports io.cattle.k3s.import=<file>.
const (
	LabelSeed        = "io.ctr-seed.seed"
	LabelSeedVersion = "io.ctr-seed.seed.version"
)

// provenance are the labels of the images of seed s (a seed read from
// stdin, "<stdin>", has no file name).
func provenance(s *fetcher.Seed) map[string]string {
	l := map[string]string{LabelSeedVersion: s.Index().Digest.String()}
	if p := s.Path(); p != "" && !strings.HasPrefix(p, "<") {
		l[LabelSeed] = filepath.Base(p)
	}
	return l
}

// refSource is how containerd's transfer import marks an index entry whose
// names come from its annotations.
const refSource = "io.containerd.import.ref-source"

// namer is containerd's own transfer image store, configured the way
// `ctr images import` configures it, so names are identical to ctr's.
// Every record it makes carries extra (the seed's provenance) besides the
// importer's labels.
func (im *Importer) namer(ctx context.Context, extra map[string]string) *image.Store {
	prefix, overwrite := im.opts.BaseName, im.opts.BaseName == ""
	if prefix == "" {
		prefix = im.digestPrefix()
	}
	labels := im.imageLabels(ctx)
	maps.Copy(labels, extra)
	opts := []image.StoreOpt{image.WithImageLabels(labels)}
	if im.opts.Digests {
		opts = append(opts, image.WithDigestRef(prefix, overwrite, !im.opts.SkipDigestForNamed))
	} else {
		opts = append(opts, image.WithNamedPrefix(prefix, overwrite))
	}
	return image.NewStore(im.opts.IndexName, opts...)
}

// digestPrefix is what names an image by digest: the base name, or
// containerd's import-<date>.
func (im *Importer) digestPrefix() string {
	if im.opts.BaseName != "" {
		return im.opts.BaseName
	}
	return fmt.Sprintf("import-%s", time.Now().Format("2006-01-02"))
}

// recordEntry creates the records for one top-level index entry; no name
// is not an error (ctr skips such entries too).
// (into is where: the image service, or planNames's store that keeps
// nothing).
func (im *Importer) recordEntry(ctx context.Context, st *image.Store, into images.Store, desc ocispec.Descriptor) ([]string, error) {
	desc.Annotations = maps.Clone(desc.Annotations)
	if desc.Annotations == nil {
		desc.Annotations = map[string]string{}
	}
	desc.Annotations[refSource] = "annotation"
	return store(ctx, st, into, desc)
}

func store(ctx context.Context, st *image.Store, into images.Store, desc ocispec.Descriptor) ([]string, error) {
	imgs, err := st.Store(ctx, desc, into)
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

// recordDigestRefs records repo@digest beside each repo:tag of names, as a
// pull through CRI leaves them (digest_refs): the image looks pulled, and
// a pod spec or a peer (spegel, k3s's embedded registry) can name it by
// digest. It returns the names it recorded.
func (im *Importer) recordDigestRefs(ctx context.Context, names []string, desc ocispec.Descriptor, extra map[string]string) ([]string, error) {
	var out []string
	for _, n := range names {
		spec, err := reference.Parse(n)
		if err != nil || spec.Digest() != "" {
			continue // by digest already, or a name that is no reference
		}
		ref := spec.Locator + "@" + desc.Digest.String()
		if slices.Contains(names, ref) || slices.Contains(out, ref) {
			continue
		}
		if err := im.record(ctx, ref, desc, extra); err != nil {
			return out, err
		}
		out = append(out, ref)
	}
	return out, nil
}

// record creates or updates one named image (pull), with the importer's
// labels and extra.
func (im *Importer) record(ctx context.Context, name string, desc ocispec.Descriptor, extra map[string]string) error {
	labels := im.imageLabels(ctx)
	maps.Copy(labels, extra)
	return im.create(ctx, images.Image{Name: name, Target: desc, Labels: labels})
}

// create creates or updates the record img, keeping the labels of an
// existing one (as containerd's transfer image store does, through
// keepLabels).
func (im *Importer) create(ctx context.Context, img images.Image) error {
	is := keepLabels{im.svc.Images}
	name := img.Name
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
