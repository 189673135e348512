// Package fetcher reads seeds — image archives carried onto a node — and
// serves their content through containerd's own interfaces.
//
// A seed is indexed once when it is opened: for a tar, one pass over the
// headers records each entry's offset and size, and blobs are later read
// with an io.SectionReader at that offset, so a seed with many images is
// never rescanned. A seed compressed as a whole (gzip or zstd) cannot be
// read at random offsets, so opening it decompresses it once into an
// unlinked spool file and indexes that same stream; every later read is a
// section of the spool. That keeps one decompression pass per import at the
// cost of temporary disk space the size of the tar (never memory).
//
// Every blob served from a seed is verified against its digest and size
// while it streams. Archive entries are only served when they are regular
// files; links are resolved inside the archive, never on the host.
//
// Each format is one file behind the archive interface (tar.go, compressed.go,
// dir.go); layout.go and docker.go interpret an archive as an OCI image
// layout or a `docker save` tarball. Resolver combines seeds with the
// registry (containerd's docker resolver) behind remotes.Resolver.
package fetcher

import (
	_ "crypto/sha256" // registers the digest algorithms seeds use
	_ "crypto/sha512"
)
