package fetcher

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// A caller that reads exactly the declared size (io.ReadFull, as a
// document read to its size is) never asks for EOF: other bytes of the
// same length must fail that read, small or piped, and a good blob must
// not. Issue 24, finding 3 and 4.
func TestVerifierChecksAtSize(t *testing.T) {
	for _, size := range []int{0, 1, 4 << 10, pipeMin + 5} {
		good := bytes.Repeat([]byte("m"), size)
		d := digest.FromBytes(good)
		readFull := func(b []byte, declared int) error {
			v := newVerifier(bytes.NewReader(b), io.NopCloser(nil), "seed s.tar", d, int64(declared))
			defer v.Close()
			_, err := io.ReadFull(v, make([]byte, declared))
			return err
		}
		if err := readFull(good, size); err != nil {
			t.Fatalf("size %d: good blob: %v", size, err)
		}
		if size == 0 {
			continue
		}
		bad := bytes.Repeat([]byte("n"), size)
		err := readFull(bad, size)
		if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), "digest mismatch") {
			t.Fatalf("size %d: same-length other bytes read to their size: got %v, want a digest mismatch", size, err)
		}
		// More bytes than declared, read to the declared size + 1.
		v := newVerifier(bytes.NewReader(append(good, 'x')), io.NopCloser(nil), "seed s.tar", d, int64(size))
		_, err = io.ReadAll(v)
		v.Close()
		if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), "size mismatch") {
			t.Fatalf("size %d: a byte past the size: got %v, want a size mismatch", size, err)
		}
	}
}
