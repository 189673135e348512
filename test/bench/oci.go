package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	imageName = "docker.io/library/bench:1"
	imageTag  = "1"
)

// blobEntry is one blobs/sha256/<hex> entry: small JSON held in memory or
// a layer streamed from its temp file.
type blobEntry struct {
	d    digest.Digest
	size int64
	data []byte
	path string
}

// writeOCITar writes the OCI image layout as `ctr images export` does
// (entries sorted by name) into a temp file and renames it to path.
func writeOCITar(dir, path string, layers []layerInfo) (int64, error) {
	plat := platforms.DefaultSpec()
	created := testseed.FixedTime
	cfg := ocispec.Image{
		Created:  &created,
		Author:   "ctr-seed bench",
		Platform: plat,
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/local/go/bin:/usr/bin:/bin"}, WorkingDir: "/"},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	var blobs []blobEntry
	var descs []ocispec.Descriptor
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: "bench layer " + l.Name})
		descs = append(descs, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: l.Digest, Size: l.Size})
		blobs = append(blobs, blobEntry{d: l.Digest, size: l.Size, path: l.path})
	}
	cfgDesc, cfgBlob, err := jsonBlob(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return 0, err
	}
	mfDesc, mfBlob, err := jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    descs,
	})
	if err != nil {
		return 0, err
	}
	blobs = append(blobs, cfgBlob, mfBlob)
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].d < blobs[j].d })

	mfDesc.Annotations = map[string]string{
		testseed.AnnotationImageName: imageName,
		testseed.AnnotationRefName:   imageTag,
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{mfDesc},
	})
	if err != nil {
		return 0, err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return 0, err
	}

	f, err := os.CreateTemp(dir, ".seed-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(header(d, tar.TypeDir, 0o755, 0, "")); err != nil {
			return 0, err
		}
	}
	for _, b := range blobs {
		if err := writeBlob(tw, b); err != nil {
			return 0, err
		}
	}
	for _, e := range []struct {
		name string
		mode int64
		data []byte
	}{{"index.json", 0o644, index}, {"oci-layout", 0o444, layout}} {
		if err := tw.WriteHeader(header(e.name, tar.TypeReg, e.mode, int64(len(e.data)), "")); err != nil {
			return 0, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return fi.Size(), os.Rename(f.Name(), path)
}

func writeBlob(tw *tar.Writer, b blobEntry) error {
	name := filepath.ToSlash(filepath.Join("blobs", "sha256", b.d.Encoded()))
	if err := tw.WriteHeader(header(name, tar.TypeReg, 0o444, b.size, "")); err != nil {
		return err
	}
	if b.path == "" {
		_, err := tw.Write(b.data)
		return err
	}
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, b.size)
	return err
}

func jsonBlob(mediaType string, v any) (ocispec.Descriptor, blobEntry, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, blobEntry{}, fmt.Errorf("marshal %s: %w", mediaType, err)
	}
	d := digest.FromBytes(p)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(p))},
		blobEntry{d: d, size: int64(len(p)), data: p}, nil
}

// goEnv asks the go command, as `go env X` on the command line would.
func goEnv(key string) (string, error) {
	out, err := exec.Command("go", "env", key).Output()
	return strings.TrimSpace(string(out)), err
}
