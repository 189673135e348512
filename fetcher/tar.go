package fetcher

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync/atomic"

	"github.com/containerd/errdefs"
)

// tarArchive is a tar indexed once; files are sections of ra.
type tarArchive struct {
	ra     io.ReaderAt
	closer io.Closer
	idx    *entries
}

func (t *tarArchive) lookup(name string) (file, error) {
	e, err := t.idx.resolve(name)
	if err != nil {
		return file{}, err
	}
	ra := t.ra
	return file{name: name, size: e.size, open: func() (io.ReaderAt, io.Closer, error) {
		return io.NewSectionReader(ra, e.off, e.size), io.NopCloser(nil), nil
	}}, nil
}

func (t *tarArchive) list(dir string) ([]string, error) { return t.idx.list(dir), nil }

func (t *tarArchive) Close() error {
	if t.closer == nil {
		return nil
	}
	return t.closer.Close()
}

// posReader tracks the offset of everything read (or skipped by Seek)
// through it, so that after tar.Reader.Next the position is where the
// entry's data starts. It also counts calls, which tests use to prove a
// seed is indexed in one pass.
type posReader struct {
	r     io.Reader
	pos   int64
	reads atomic.Int64
	seeks atomic.Int64
}

func (p *posReader) Read(b []byte) (int, error) {
	p.reads.Add(1)
	n, err := p.r.Read(b)
	p.pos += int64(n)
	return n, err
}

// seekPosReader is a posReader over a seekable file: archive/tar then seeks
// over entry data instead of reading it, so indexing reads only headers.
type seekPosReader struct {
	*posReader
	s io.Seeker
}

func (p seekPosReader) Seek(off int64, whence int) (int64, error) {
	p.seeks.Add(1)
	n, err := p.s.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// errTruncated: the archive stops inside, or right after, an entry.
var errTruncated = errors.New("truncated archive")

// indexTar reads the tar headers from r once and records every entry.
// r must be positioned at offset 0 of the stream that offsets refer to.
func indexTar(r io.Reader) (*entries, error) {
	idx := newEntries()
	var pr *posReader
	var tr *tar.Reader
	if s, ok := r.(*posReader); ok {
		pr = s
		tr = tar.NewReader(pr)
	} else if s, ok := r.(seekPosReader); ok {
		pr = s.posReader
		tr = tar.NewReader(s)
	} else {
		pr = &posReader{r: r}
		tr = tar.NewReader(pr)
	}
	var names int64
	// end is where the last entry's data (padded to tar's 512-byte blocks)
	// ends: a tar stops with an end-of-archive marker after it. A stream
	// that stops right there is cut at an entry boundary (a copy stopped
	// between two entries, a split seed without its later parts), which
	// archive/tar reports as a clean end.
	var end int64
	for n := 0; ; n++ {
		if n == MaxEntries {
			return nil, fmt.Errorf("more than %d entries (the cap on a seed's index): %w", MaxEntries, errdefs.ErrInvalidArgument)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return nil, fmt.Errorf("%w: not a tar archive: no entries: %w", ErrNotArchive, errdefs.ErrInvalidArgument)
			}
			if pr.pos <= end {
				return nil, fmt.Errorf("%w after %d entries: it ends without tar's end-of-archive marker: %w", errTruncated, n, errdefs.ErrInvalidArgument)
			}
			return idx, nil
		}
		if err != nil {
			if n == 0 {
				// A text file, a checksum list: nothing that starts a tar.
				return nil, fmt.Errorf("%w: not a tar archive (nor gzip or zstd): %w", ErrNotArchive, errdefs.ErrInvalidArgument)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w after %d entries: %w", errTruncated, n, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("reading tar header %d: %v: %w", n+1, err, errdefs.ErrInvalidArgument)
		}
		end = pr.pos + (hdr.Size+511)/512*512
		if len(hdr.Name) > MaxNameLen || len(hdr.Linkname) > MaxNameLen {
			return nil, fmt.Errorf("tar entry %d: name or link of %d bytes, beyond the %d byte cap: %w",
				n+1, max(len(hdr.Name), len(hdr.Linkname)), MaxNameLen, errdefs.ErrInvalidArgument)
		}
		if names += int64(len(hdr.Name) + len(hdr.Linkname)); names > MaxNameBytes {
			return nil, fmt.Errorf("entry names beyond %d bytes in all (the cap on a seed's index): %w", MaxNameBytes, errdefs.ErrInvalidArgument)
		}
		name, ok := cleanName(hdr.Name)
		if !ok {
			// Keyed by where it would land, so a lookup of that name
			// explains itself instead of looking merely absent.
			idx.rejected[path.Clean("/" + hdr.Name)[1:]] = "path leaves the archive"
			continue
		}
		e := entry{kind: kindOther}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use TypeRegA
			if isSparse(hdr) {
				idx.rejected[name] = "sparse files are not supported"
				delete(idx.byName, name)
				continue
			}
			e = entry{kind: kindReg, off: pr.pos, size: hdr.Size}
		case tar.TypeSymlink:
			e = entry{kind: kindSymlink, link: linkTarget(name, hdr.Linkname, false)}
		case tar.TypeLink:
			e = entry{kind: kindHardlink, link: linkTarget(name, hdr.Linkname, true)}
		case tar.TypeDir:
			continue
		}
		idx.byName[name] = e
		delete(idx.rejected, name)
	}
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
