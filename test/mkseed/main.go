// Command mkseed writes small deterministic seeds in every format ctr-seed
// reads, for the demo and for trying the CLI by hand.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	out := flag.String("o", ".", "directory to write seeds into")
	corrupt := flag.Bool("corrupt", false, "write only corrupt.tar: an OCI seed with one flipped byte in a layer")
	flag.Parse()
	if err := run(*out, *corrupt); err != nil {
		fmt.Fprintf(os.Stderr, "mkseed: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, corrupt bool) error {
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	demo, err := testseed.Build(testseed.Standard("docker.io/library/demo:1.0", amd64, false, testseed.Gzip))
	if err != nil {
		return err
	}
	var oci testseed.Seed
	oci.Add("docker.io/library/demo:1.0", demo.Manifest, demo.Blobs)
	if corrupt {
		l := demo.Layers[1].Digest
		b := append([]byte(nil), oci.Blobs[l]...)
		b[len(b)/2] ^= 0xff
		oci.Blobs[l] = b
		return write(filepath.Join(dir, "corrupt.tar"), testseed.Uncompressed, oci.WriteOCITar)
	}
	idx, blobs, _, err := testseed.BuildIndex(testseed.MultiPlatform{Images: []testseed.Image{
		testseed.Standard("", amd64, false, testseed.Zstd),
		testseed.Standard("", arm64, false, testseed.Gzip),
	}})
	if err != nil {
		return err
	}
	oci.Add("docker.io/library/multi:2", idx, blobs)
	docker := []testseed.DockerImage{{RepoTags: []string{"demo-docker:1.0"}, Built: demo, SymlinkLayers: true}}
	writeDocker := func(w io.Writer) error { return testseed.WriteDockerTar(w, docker) }
	for _, s := range []struct {
		name  string
		c     testseed.Compression
		write func(io.Writer) error
	}{
		{"demo-oci.tar", testseed.Uncompressed, oci.WriteOCITar},
		{"demo-oci.tar.zst", testseed.Zstd, oci.WriteOCITar},
		{"demo-docker.tar", testseed.Uncompressed, writeDocker},
		{"demo-docker.tar.gz", testseed.Gzip, writeDocker},
	} {
		if err := write(filepath.Join(dir, s.name), s.c, s.write); err != nil {
			return err
		}
	}
	return oci.WriteOCIDir(filepath.Join(dir, "oci-dir"))
}

func write(path string, c testseed.Compression, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := testseed.Compress(f, c)
	if err != nil {
		return err
	}
	if err := fn(w); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}
