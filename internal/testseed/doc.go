// Package testseed builds small, deterministic container images in memory
// and writes them as "seeds": OCI image-layout archives (as produced by
// `ctr images export`) and legacy `docker save` archives.
//
// Tests and demos need images whose digests are stable across runs and
// machines, so that expectations can be hard-coded and failures reproduced.
// Everything here is therefore free of wall-clock time, randomness, host
// user ids and map-iteration order: tar headers use FixedTime, uid/gid 0 and
// fixed modes; gzip headers carry no name or mtime; zstd runs single-threaded;
// archive entries are sorted by name.
//
// Nothing is validated beyond what is needed to produce well-formed bytes.
// Entry names, annotations and blobs are written verbatim so tests can craft
// hostile or broken inputs (path traversal, missing or corrupt blobs,
// unnamed index entries) on purpose.
package testseed

import _ "crypto/sha256" // registers sha256 with go-digest

import (
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FixedTime is the timestamp used for every tar header, the image config
// and its history. It is a constant so that rebuilding a seed yields the
// same bytes and therefore the same digests.
var FixedTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// Docker (schema 2) media types. The image-spec module does not define
// them, and importing containerd's images package only for strings would
// pull a large dependency tree into every test binary.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// Annotation keys written by Seed.Add, mirroring `ctr images export`.
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = ocispec.AnnotationRefName
)
