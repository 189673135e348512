package fetcher

import (
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/errclass"
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
	source   string    // "registry REF": where the blob comes from, when not a seed
	seed     string    // the seed it comes from: its errors are SeedErrors
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
		bad = fmt.Errorf("blob %q: invalid digest: %v: %w", expected, err, errdefs.ErrInvalidArgument)
		if source != "" {
			bad = fmt.Errorf("%s: %w", source, bad)
		}
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
		v.err = v.wrap(errclass.Errorf(errdefs.ErrDataLoss, "%s: size mismatch: expected %d bytes, got more", v.blob(), v.size))
		return 0, v.err
	}
	v.w.Write(p[:n])
	v.n += int64(n)
	if v.n == v.size && !v.checked {
		v.checked = true
		v.end()
		if got := v.digester.Digest(); got != v.expected {
			v.err = v.wrap(errclass.Errorf(errdefs.ErrDataLoss, "%s: digest mismatch: expected %s, got %s", v.blob(), v.expected, got))
			return 0, v.err
		}
	}
	if err == io.EOF {
		if v.n != v.size {
			v.end()
			v.err = v.wrap(errclass.Errorf(errdefs.ErrDataLoss, "%s: size mismatch: expected %d bytes, got %d", v.blob(), v.size, v.n))
			return 0, v.err
		}
		v.err = io.EOF
		return n, v.err
	}
	if err != nil {
		v.err = v.wrap(fmt.Errorf("%s: %w", v.blob(), err))
		return n, v.err
	}
	return n, nil
}

// wrap says where the blob comes from: its seed (a SeedError) or source.
func (v *verifier) wrap(err error) error {
	if v.seed != "" {
		return &SeedError{Seed: v.seed, Err: err}
	}
	if v.source != "" {
		return fmt.Errorf("%s: %w", v.source, err)
	}
	return err
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
