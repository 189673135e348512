// Package blobprogress is what the connected-side commands (save, push)
// tell about the blobs they copy, for bars on a terminal and lines
// otherwise; one interface for both, so the CLI draws them alike.
package blobprogress

import digest "github.com/opencontainers/go-digest"

// Observer is told which blobs are copied; it must be safe for concurrent
// use.
type Observer interface {
	// BlobStarted: d (size bytes) is being copied, from where ("seed",
	// "containerd", "registry").
	BlobStarted(d digest.Digest, size int64, from string)
	// BlobProgress: n more bytes of d were copied.
	BlobProgress(d digest.Digest, n int64)
	// BlobDone: every byte of d was copied (err nil), or the copy stopped.
	BlobDone(d digest.Digest, err error)
}

// Or is o, or an Observer that ignores everything when o is nil.
func Or(o Observer) Observer {
	if o == nil {
		return nop{}
	}
	return o
}

type nop struct{}

func (nop) BlobStarted(digest.Digest, int64, string) {}
func (nop) BlobProgress(digest.Digest, int64)        {}
func (nop) BlobDone(digest.Digest, error)            {}
