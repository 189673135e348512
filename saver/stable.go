package saver

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
)

// stableTar passes the exporter's tar through to w unchanged but for its
// docker manifest.json, whose entries it sorts: containerd's exporter
// writes them in the order of a Go map, which changes from run to run, so
// a seed of several images would differ between two saves of the same
// images. It also drops the entries of signature manifests (their configs
// are in drop): docker load would try to load a signature as an image.
// Everything else is copied as read.
type stableTar struct {
	pw   *io.PipeWriter
	done chan error
}

func newStableTar(w io.Writer, drop map[string]bool) *stableTar {
	pr, pw := io.Pipe()
	s := &stableTar{pw: pw, done: make(chan error, 1)}
	go func() {
		err := sortManifestJSON(pr, w, drop)
		// Unblock the writer whatever happened; it sees err on its next
		// Write (or Close).
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		s.done <- err
	}()
	return s
}

func (s *stableTar) Write(p []byte) (int, error) { return s.pw.Write(p) }

// Close ends the stream (err nil: complete) and waits for the copy.
func (s *stableTar) Close(err error) error {
	s.pw.CloseWithError(err)
	if cerr := <-s.done; err == nil {
		return cerr
	}
	return err
}

// dockerManifestEntry is one entry of manifest.json, with the exporter's
// fields in the exporter's order.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func sortManifestJSON(r io.Reader, w io.Writer, drop map[string]bool) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("re-reading the exported archive: %w", err)
		}
		if hdr.Name != "manifest.json" {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 32<<20+1))
		if err != nil {
			return err
		}
		var es []dockerManifestEntry
		if len(b) > 32<<20 || json.Unmarshal(b, &es) != nil {
			return fmt.Errorf("the exporter's manifest.json: unreadable: %w", errdefs.ErrInternal)
		}
		es = slices.DeleteFunc(es, func(e dockerManifestEntry) bool { return drop[e.Config] })
		slices.SortStableFunc(es, func(a, b dockerManifestEntry) int {
			if c := strings.Compare(strings.Join(a.RepoTags, ","), strings.Join(b.RepoTags, ",")); c != 0 {
				return c
			}
			return strings.Compare(a.Config, b.Config)
		})
		if b, err = json.Marshal(es); err != nil {
			return err
		}
		hdr.Size = int64(len(b))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, r) // the exporter's trailing blocks
	return err
}
