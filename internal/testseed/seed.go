package testseed

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/containerd/containerd/v2/pkg/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Seed is a set of top-level entries for index.json plus blobs. The zero
// value is ready to use.
//
// Blobs are written verbatim and never verified, and no check is made that
// every referenced blob is present, so tests can plant corrupt or missing
// content by editing Blobs directly.
type Seed struct {
	Manifests []ocispec.Descriptor // top-level index.json entries, in Add order
	Blobs     map[digest.Digest][]byte
}

// Add adds desc (from Build or BuildIndex) as a top-level entry named the
// way `ctr images export` names it: io.containerd.image.name is the full
// reference and org.opencontainers.image.ref.name only its tag (or the full
// reference if it has no tag or is by digest). As in ctr's output, the
// entry carries no platform. An empty name behaves like AddRaw with nil
// annotations.
func (s *Seed) Add(name string, desc ocispec.Descriptor, blobs map[digest.Digest][]byte) {
	if name == "" {
		s.AddRaw(desc, nil, blobs)
		return
	}
	ann := maps.Clone(desc.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationImageName] = name
	ann[AnnotationRefName] = ociRefName(name)
	desc.Platform = nil
	s.AddRaw(desc, ann, blobs)
}

// AddRaw adds desc with exactly the given annotations (nil allowed),
// replacing any on desc, so tests can create tag-only, unnamed or
// otherwise unusual entries. Everything else in desc is kept as is.
func (s *Seed) AddRaw(desc ocispec.Descriptor, annotations map[string]string, blobs map[digest.Digest][]byte) {
	desc.Annotations = maps.Clone(annotations)
	s.Manifests = append(s.Manifests, desc)
	if s.Blobs == nil {
		s.Blobs = map[digest.Digest][]byte{}
	}
	maps.Copy(s.Blobs, blobs)
}

// ociRefName mirrors containerd's archive exporter so seeds look exactly
// like `ctr images export` output.
func ociRefName(name string) string {
	if spec, err := reference.Parse(name); err == nil && spec.Object != "" && spec.Object[0] != '@' {
		return spec.Object
	}
	return name
}

// entry is one file of an archive; the same list drives both the tar and
// the directory writer so the two layouts cannot drift apart.
type entry struct {
	name     string
	typ      byte
	mode     int64
	data     []byte
	linkname string
}

// ociEntries returns the layout's entries sorted by name, which is the
// order containerd's exporter uses: "blobs/", "blobs/sha256/",
// "blobs/sha256/<hex>"..., "index.json", "oci-layout". Modes match it too.
func (s *Seed) ociEntries() ([]entry, error) {
	manifests := s.Manifests
	if manifests == nil {
		manifests = []ocispec.Descriptor{}
	}
	idx, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
	if err != nil {
		return nil, fmt.Errorf("testseed: marshal index.json: %w", err)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}
	es := []entry{
		{name: ocispec.ImageBlobsDir + "/", typ: tar.TypeDir, mode: 0o755},
		{name: ocispec.ImageIndexFile, typ: tar.TypeReg, mode: 0o644, data: idx},
		{name: ocispec.ImageLayoutFile, typ: tar.TypeReg, mode: 0o444, data: layout},
	}
	algs := map[string]bool{}
	for d, p := range s.Blobs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("testseed: blob key %q: %w", d, err)
		}
		alg := d.Algorithm().String()
		if !algs[alg] {
			algs[alg] = true
			es = append(es, entry{name: path.Join(ocispec.ImageBlobsDir, alg) + "/", typ: tar.TypeDir, mode: 0o755})
		}
		es = append(es, entry{name: path.Join(ocispec.ImageBlobsDir, alg, d.Encoded()), typ: tar.TypeReg, mode: 0o444, data: p})
	}
	sortEntries(es)
	return es, nil
}

// WriteOCITar writes the seed as an OCI image-layout tar, entries in the
// order documented on ociEntries.
func (s *Seed) WriteOCITar(w io.Writer) error {
	es, err := s.ociEntries()
	if err != nil {
		return err
	}
	return writeTarEntries(w, es)
}

// WriteOCIDir writes the same layout as WriteOCITar into dir, creating it
// if needed. Files are created 0644 rather than the tar's 0444 so test
// cleanup and later overwrites do not trip over read-only files.
func (s *Seed) WriteOCIDir(dir string) error {
	es, err := s.ociEntries()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range es {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		switch e.typ {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(p, e.data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// sortEntries orders by name so archives do not depend on map order.
func sortEntries(es []entry) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].name < es[j].name })
}

// writeTarEntries writes es with pinned time and ownership; entries with
// a name already written are skipped, as containerd's exporter does.
func writeTarEntries(w io.Writer, es []entry) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.name] {
			continue
		}
		seen[e.name] = true
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.linkname,
			Mode:     e.mode,
			ModTime:  FixedTime,
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Size > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
