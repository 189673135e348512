package applier

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestReadAheadWholeStreamAndErrors(t *testing.T) {
	data := make([]byte, 3*aheadChunkSize+777)
	rand.Read(data)
	src := &closeCounter{Reader: bytes.NewReader(data)}
	r := newReadAhead(src)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d of the source", len(got), err, len(data))
	}
	r.Close()
	if src.closed != 1 {
		t.Errorf("source closed %d times, want 1", src.closed)
	}

	// The source's error comes after the bytes read before it.
	bad := errors.New("flate: corrupt input")
	r = newReadAhead(&closeCounter{Reader: io.MultiReader(bytes.NewReader(data[:1000]), iotestErr(bad))})
	got, err = io.ReadAll(r)
	if !errors.Is(err, bad) || len(got) != 1000 {
		t.Errorf("read %d bytes, %v; want 1000, then %v", len(got), err, bad)
	}
	r.Close()
}

func TestReadAheadCloseEarly(t *testing.T) {
	src := &closeCounter{Reader: endless{}}
	r := newReadAhead(src)
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of an endless stream did not return")
	}
	if src.closed != 1 {
		t.Errorf("source closed %d times, want 1", src.closed)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func iotestErr(err error) io.Reader { return errReader{err} }
