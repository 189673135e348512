package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

func TestRawTarRoundTrip(t *testing.T) {
	b := RawTar(t,
		RawEntry{Name: "a", Body: []byte("x")},
		RawEntry{Name: "l", Type: tar.TypeSymlink, Link: "/etc/passwd", Body: []byte("ignored")},
		RawEntry{Name: "../up", Body: []byte("y")},
	)
	got := TarFiles(t, b)
	if len(got) != 2 || got["a"] != "x" || got["../up"] != "y" {
		t.Errorf("TarFiles = %v, want a=x and ../up=y only (a symlink is no file)", got)
	}
}

func TestArchiveCompresses(t *testing.T) {
	payload := make([]byte, 1<<16)
	for _, c := range []testseed.Compression{testseed.Gzip, testseed.Zstd} {
		if n := len(Archive(t, c, Bytes(payload))); n >= len(payload)/10 {
			t.Errorf("%v: %d bytes of zeros compressed to %d", c, len(payload), n)
		}
	}
	if got := Archive(t, testseed.Uncompressed, Bytes([]byte("abc"))); string(got) != "abc" {
		t.Errorf("uncompressed archive = %q, want the bytes as written", got)
	}
}

func TestTailAndLines(t *testing.T) {
	if got := Tail("1\n2\n3\n", 2); got != "2\n3" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail("1\n2", 5); got != "1\n2" {
		t.Errorf("Tail of a short text = %q", got)
	}
	if got := Lines(""); got != nil {
		t.Errorf("Lines(\"\") = %q, want none", got)
	}
	if got := Lines("a\n\nb\n"); !slices.Equal(got, []string{"a", "", "b"}) {
		t.Errorf("Lines = %q", got)
	}
}

func TestByteCount(t *testing.T) {
	var n ByteCount
	for _, s := range []string{"abc", "", "de"} {
		if k, err := n.Write([]byte(s)); k != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, k, err)
		}
	}
	if n != 5 {
		t.Errorf("counted %d bytes, want 5", n)
	}
}

// SparseTar is what archive/tar reads as one file of realSize bytes.
func TestSparseTar(t *testing.T) {
	b := SparseTar(t, "big", 5<<30)
	tr := tar.NewReader(bytes.NewReader(b))
	h, err := tr.Next()
	if err != nil || h.Name != "big" || h.Size != 5<<30 {
		t.Fatalf("header %+v, %v; want big of 5 GiB", h, err)
	}
	if n, err := io.CopyN(io.Discard, tr, 1<<20); n != 1<<20 || err != nil {
		t.Fatalf("read %d, %v; want the holes expanded", n, err)
	}
	if len(b) > 4096 {
		t.Errorf("%d bytes", len(b))
	}
}
