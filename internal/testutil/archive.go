package testutil

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

// Archive is what write writes (a seed, a tar), compressed as a whole
// with c.
func Archive(t testing.TB, c testseed.Compression, write func(w io.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := testseed.Compress(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Bytes is a write function for Archive that writes b.
func Bytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// WriteFile writes b to p, making p's directory, and returns p.
func WriteFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ByteCount is an io.Writer that only counts: put it in an io.MultiWriter
// beside a hash to learn a streamed blob's size and digest in one pass.
type ByteCount int64

func (n *ByteCount) Write(p []byte) (int, error) {
	*n += ByteCount(len(p))
	return len(p), nil
}
