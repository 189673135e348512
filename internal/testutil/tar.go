package testutil

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

// RawEntry is a hand-made tar entry, for archives no tool would write: a
// symlink out of the archive, a device where a blob should be, a name with
// "..". A zero Type is a regular file; only regular files carry Body.
type RawEntry struct {
	Name, Link string
	Type       byte
	Body       []byte
}

// RawTar writes es, in order, as an uncompressed tar (times fixed, so the
// bytes are the same on every run).
func RawTar(t testing.TB, es ...RawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := &tar.Header{Name: e.Name, Linkname: e.Link, Typeflag: e.Type, Mode: 0o644, ModTime: testseed.FixedTime}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Body[:hdr.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TarFiles returns the regular files of an uncompressed tar by name.
func TarFiles(t testing.TB, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		p, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(p)
	}
}
