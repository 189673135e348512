package faults_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// bigSeed is the seed every fault test imports: an OCI layout tar
// (uncompressed, so blobs are sections of the file and reading is cheap)
// holding one image of five uncompressed layers, the second of them a
// single file of incompressible pseudo-random bytes. That layer is what
// makes an import last long enough to be interrupted "midway": the tests
// act once the daemon holds a partial ingest of it.
//
// Each test starts its own daemon, so all of them can import the same seed
// without finding its blobs already in the store.
type bigSeed struct {
	Path     string
	Name     string // the image's name (io.containerd.image.name)
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
	Big      ocispec.Descriptor // the large layer, one of Layers
}

// Blobs is every blob of the image: manifest, config, layers.
func (s *bigSeed) Blobs() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{s.Manifest, s.Config}, s.Layers...)
}

// randomLayer writes the large layer: a tar of one file of n bytes from a
// ChaCha8 stream keyed by key. It is called twice with the same arguments
// (once to hash, once to write), so it must be deterministic; it streams,
// so n costs no memory.
func randomLayer(w io.Writer, key string, n int64) error {
	tw := tar.NewWriter(w)
	for _, d := range []string{"opt/", "opt/faults/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: testseed.FixedTime}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "opt/faults/random.bin", Mode: 0o644, Size: n, ModTime: testseed.FixedTime}); err != nil {
		return err
	}
	var k [32]byte
	copy(k[:], key)
	if _, err := io.CopyN(tw, rand.NewChaCha8(k), n); err != nil {
		return err
	}
	return tw.Close()
}

// smallLayer is a layer of a few small files, unique to i and key.
func smallLayer(i int, key string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct{ name, body string }{
		{fmt.Sprintf("etc/faults/layer-%d", i), fmt.Sprintf("layer %d of %s\n", i, key)},
		{fmt.Sprintf("usr/share/faults/%d/notes.txt", i), fmt.Sprintf("notes %d\n", i)},
	}
	for _, d := range []string{"etc/", "etc/faults/", "usr/", "usr/share/", "usr/share/faults/", fmt.Sprintf("usr/share/faults/%d/", i)} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: testseed.FixedTime}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: testseed.FixedTime}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeBigSeed writes the seed into dir: layers small, big (bigBytes of
// random data), small, small, small. key makes the content unique.
func writeBigSeed(dir, key string, bigBytes int64) (*bigSeed, error) {
	s := &bigSeed{Path: filepath.Join(dir, "big-seed.tar"), Name: "registry.local/faults/big:" + key}
	small := map[digest.Digest][]byte{}
	var diffIDs []digest.Digest
	for i := range 5 {
		var desc ocispec.Descriptor
		if i == 1 {
			h := sha256.New()
			var n testutil.ByteCount
			if err := randomLayer(io.MultiWriter(h, &n), key, bigBytes); err != nil {
				return nil, err
			}
			desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.NewDigest(digest.SHA256, h), Size: int64(n)}
			s.Big = desc
		} else {
			b, err := smallLayer(i, key)
			if err != nil {
				return nil, err
			}
			desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(len(b))}
			small[desc.Digest] = b
		}
		s.Layers = append(s.Layers, desc)
		diffIDs = append(diffIDs, desc.Digest) // uncompressed: digest = diffID
	}
	created := testseed.FixedTime
	add := func(mt string, v any) (ocispec.Descriptor, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		small[d.Digest] = b
		return d, nil
	}
	var err error
	s.Config, err = add(ocispec.MediaTypeImageConfig, ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return nil, err
	}
	s.Manifest, err = add(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    s.Config,
		Layers:    s.Layers,
	})
	if err != nil {
		return nil, err
	}
	entry := s.Manifest
	entry.Annotations = map[string]string{testseed.AnnotationImageName: s.Name, testseed.AnnotationRefName: key}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{entry}})
	if err != nil {
		return nil, err
	}

	f, err := os.Create(s.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	reg := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o444, Size: size, ModTime: testseed.FixedTime})
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: testseed.FixedTime}); err != nil {
			return nil, err
		}
	}
	for _, d := range slices.Sorted(maps.Keys(small)) {
		b := small[d]
		if err := reg("blobs/sha256/"+d.Encoded(), int64(len(b))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := reg("blobs/sha256/"+s.Big.Digest.Encoded(), s.Big.Size); err != nil {
		return nil, err
	}
	if err := randomLayer(tw, key, bigBytes); err != nil {
		return nil, err
	}
	for _, e := range []struct {
		name string
		body []byte
	}{{"index.json", idx}, {"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}} {
		if err := reg(e.name, int64(len(e.body))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return s, f.Close()
}
