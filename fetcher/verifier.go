package fetcher

import (
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// verifier checks a blob's size and digest while it streams; the mismatch
// surfaces as the error of the Read that reaches the end.
type verifier struct {
	r        io.Reader
	closer   io.Closer
	digester digest.Digester
	w        io.Writer // the digester's hash, or a pipe to it
	pipe     *hashPipe // for large blobs; nil otherwise
	source   string    // "seed PATH" or "registry REF": where the blob comes from
	file     string    // the blob's file in the seed, when not blobs/<alg>/<hex>
	expected digest.Digest
	size, n  int64
	checked  bool // the digest was checked on reaching size
	err      error
}

// newVerifier verifies r as the blob expected of size bytes; source names
// where it comes from in errors ("seed PATH", "registry REF").
func newVerifier(r io.Reader, c io.Closer, source string, expected digest.Digest, size int64) *verifier {
	alg := digest.Canonical
	var bad error
	if err := expected.Validate(); err != nil {
		bad = fmt.Errorf("%s: blob %q: invalid digest: %v: %w", source, expected, err, errdefs.ErrInvalidArgument)
	} else {
		alg = expected.Algorithm()
	}
	v := &verifier{r: r, closer: c, digester: alg.Digester(), source: source, expected: expected, size: size, err: bad}
	v.w = v.digester.Hash()
	if size >= pipeMin {
		v.pipe = newHashPipe(v.digester.Hash())
		v.w = v.pipe
	}
	return v
}

// Read checks the digest as soon as the declared size is reached, not at
// EOF: a caller that reads exactly desc.Size bytes (io.ReadFull, a
// document read to its size) never asks for EOF. The Read that completes
// a blob with the wrong digest returns none of its bytes, so that
// io.ReadFull cannot report a full buffer; bytes past the size are an
// error too.
func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if v.n+int64(n) > v.size {
		v.end()
		v.err = fmt.Errorf("%s: %s: size mismatch: expected %d bytes, got more: %w", v.source, v.blob(), v.size, errdefs.ErrDataLoss)
		return 0, v.err
	}
	v.w.Write(p[:n])
	v.n += int64(n)
	if v.n == v.size && !v.checked {
		v.checked = true
		v.end()
		if got := v.digester.Digest(); got != v.expected {
			v.err = fmt.Errorf("%s: %s: digest mismatch: expected %s, got %s: %w", v.source, v.blob(), v.expected, got, errdefs.ErrDataLoss)
			return 0, v.err
		}
	}
	if err == io.EOF {
		if v.n != v.size {
			v.end()
			v.err = fmt.Errorf("%s: %s: size mismatch: expected %d bytes, got %d: %w", v.source, v.blob(), v.size, v.n, errdefs.ErrDataLoss)
			return 0, v.err
		}
		v.err = io.EOF
		return n, v.err
	}
	if err != nil {
		v.err = fmt.Errorf("%s: %s: %w", v.source, v.blob(), err)
		return n, v.err
	}
	return n, nil
}

// end stops the hash pipe, if any, so that its digest can be read.
func (v *verifier) end() {
	if v.pipe != nil {
		v.pipe.end()
	}
}

func (v *verifier) Close() error {
	v.end()
	return v.closer.Close()
}

// blob names the blob in errors, with its file when that is not its digest.
func (v *verifier) blob() string {
	if v.file != "" {
		return fmt.Sprintf("blob %s (file %s)", v.expected, v.file)
	}
	return "blob " + v.expected.String()
}
