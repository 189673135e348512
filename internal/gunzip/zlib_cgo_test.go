//go:build cgo && !nozlib

package gunzip

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func gz(t *testing.T, members ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range members {
		w, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// sample is text-like and random parts, so both deflate's matches and
// its stored blocks are read.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	words := strings.Fields("package main import fmt func return if err nil layer seed blob digest")
	for b.Len() < n/2 {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(" \n\t"[r.IntN(3)])
	}
	for b.Len() < n {
		b.WriteByte(byte(r.Uint32()))
	}
	return b.Bytes()
}

// readAll reads r with reads of size n, as a tar reader's vary.
func readAll(r io.Reader, n int) ([]byte, error) {
	var out bytes.Buffer
	p := make([]byte, n)
	for {
		k, err := r.Read(p)
		out.Write(p[:k])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func inflate(t *testing.T, z []byte, bufSize, readSize int) ([]byte, error) {
	t.Helper()
	r, err := newZlib(bufio.NewReaderSize(bytes.NewReader(z), bufSize))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return readAll(r, readSize)
}

// TestSameAsCompressGzip: what zlib inflates is what compress/gzip does,
// for one member and several, whatever the buffer and read sizes.
func TestSameAsCompressGzip(t *testing.T) {
	one := sample(3<<20+17, 1)
	cases := map[string][]byte{
		"one member":    gz(t, one),
		"three members": gz(t, sample(1000, 2), one, sample(70000, 3)),
		"empty member":  gz(t, nil, sample(5000, 4)),
	}
	for name, z := range cases {
		want, err := readAll(mustGzip(t, z), 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][2]int{{16, 1}, {4096, 7}, {1 << 20, 256 << 10}, {64, 1 << 20}} {
			got, err := inflate(t, z, sz[0], sz[1])
			if err != nil {
				t.Fatalf("%s, buffer %d, reads of %d: %v", name, sz[0], sz[1], err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, buffer %d, reads of %d: %d bytes differ from compress/gzip's %d", name, sz[0], sz[1], len(got), len(want))
			}
		}
	}
}

func mustGzip(t *testing.T, z []byte) io.Reader {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBadStreamsFail: corrupt, truncated, a wrong checksum or length in
// the trailer, and bytes after the last member that are not gzip all end
// in an error, never in a clean EOF.
func TestBadStreamsFail(t *testing.T) {
	good := gz(t, sample(200000, 5))
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x55; return b }
	cases := map[string][]byte{
		"not gzip":        []byte("this is not a gzip stream at all"),
		"corrupt body":    flip(len(good) / 2),
		"bad crc":         flip(len(good) - 6),
		"bad size":        flip(len(good) - 2),
		"truncated":       good[:len(good)-100],
		"header only":     good[:10],
		"trailing junk":   append(bytes.Clone(good), "junk after the member"...),
		"empty":           nil,
		"truncated trail": good[:len(good)-3],
	}
	for name, z := range cases {
		_, err := inflate(t, z, 4096, 32<<10)
		if err == nil {
			t.Errorf("%s: inflated without an error", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "gzip: ") {
			t.Errorf("%s: %v, want a gzip: error", name, err)
		}
	}
	if _, err := inflate(t, good[:len(good)-100], 4096, 32<<10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v, want unexpected EOF", err)
	}
}

// TestSourceErrorPasses: an error of the source (a write that failed,
// say) reaches the reader unchanged, not as corrupt data.
func TestSourceErrorPasses(t *testing.T) {
	cause := errors.New("the source failed")
	z := gz(t, sample(1<<20, 6))
	src := io.MultiReader(bytes.NewReader(z[:len(z)/2]), errReader{cause})
	r, err := newZlib(bufio.NewReaderSize(src, 4096))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := readAll(r, 32<<10); !errors.Is(err, cause) {
		t.Fatalf("got %v, want the source's error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
