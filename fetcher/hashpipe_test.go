package fetcher

import (
	"bytes"
	"io"
	"math/rand"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// A large blob is hashed through the pipe: the verdicts are the same as
// inline hashing's, and closing early stops the hasher.
func TestVerifierPiped(t *testing.T) {
	blob := make([]byte, pipeMin+3<<20+17)
	rand.New(rand.NewSource(1)).Read(blob)
	d := digest.FromBytes(blob)

	read := func(b []byte) error {
		v := newVerifier(bytes.NewReader(b), io.NopCloser(nil), "seed s.tar", d, int64(len(blob)))
		if v.pipe == nil {
			t.Fatal("large blob not piped")
		}
		defer v.Close()
		// Odd read sizes, as io.Copy's and content.Copy's are not.
		buf := make([]byte, 300_001)
		for {
			_, err := v.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	if err := read(blob); err != nil {
		t.Fatalf("good blob: %v", err)
	}
	bad := bytes.Clone(blob)
	bad[len(bad)-1] ^= 1
	if err := read(bad); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("corrupt blob: %v", err)
	}
	v := newVerifier(bytes.NewReader(blob), io.NopCloser(nil), "seed s.tar", d, int64(len(blob)))
	v.Read(make([]byte, 5<<20))
	if err := v.Close(); err != nil { // must not hang
		t.Fatal(err)
	}
}
