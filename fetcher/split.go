package fetcher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"github.com/containerd/errdefs"
)

// A split seed is NAME.001, NAME.002, … (or from NAME.000): the parts of
// one archive, as `split -d -a 3 --numeric-suffixes=1`, hauler's
// --chunk-size and `ctr-seed save --split` write them. It is read in
// place, as one file, never reassembled on disk.

var partRE = regexp.MustCompile(`^(.*)\.(000|001)$`)

// splitParts lists the parts of the split seed path names: path is its
// first part, or its base name when no such file exists but NAME.001 (or
// NAME.000) does. No parts: path is no split seed. A gap in the numbering
// is an error naming the missing part.
func splitParts(path string) ([]string, error) {
	base, first := "", 0
	if m := partRE.FindStringSubmatch(path); m != nil {
		base, first = m[1], map[string]int{"000": 0, "001": 1}[m[2]]
		later := false
		for n := first + 1; n < first+100 && !later; n++ {
			_, err := os.Stat(fmt.Sprintf("%s.%03d", base, n))
			later = err == nil
		}
		if !later {
			return nil, nil // one file that happens to end in .001
		}
	} else if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		for _, n := range []int{1, 0} {
			if _, err := os.Stat(fmt.Sprintf("%s.%03d", path, n)); err == nil {
				base, first = path, n
				break
			}
		}
	}
	if base == "" {
		return nil, nil
	}
	var parts []string
	for n := first; ; n++ {
		p := base + "." + fmt.Sprintf("%03d", n)
		if _, err := os.Stat(p); err != nil {
			break
		}
		parts = append(parts, p)
	}
	// A later part after a gap means one is missing.
	for n := first + len(parts) + 1; n < first+len(parts)+100; n++ {
		if _, err := os.Stat(base + "." + fmt.Sprintf("%03d", n)); err == nil {
			return nil, fmt.Errorf("split seed %s: part %s.%03d is missing: %w", base, base, first+len(parts), errdefs.ErrNotFound)
		}
	}
	return parts, nil
}

// openParts opens the parts as one file. Every part but the last must be
// as large as the first (split writes them so): a short middle part is a
// truncated copy, named.
func openParts(paths []string) (seedFile, int64, error) {
	m := &multiFile{}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			m.Close()
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			m.Close()
			return nil, 0, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			m.Close()
			return nil, 0, fmt.Errorf("part %s: not a regular file: %w", p, errdefs.ErrInvalidArgument)
		}
		if i > 0 && i < len(paths)-1 && fi.Size() != m.sizes[0] {
			f.Close()
			m.Close()
			return nil, 0, fmt.Errorf("part %s: %d bytes, the first part has %d: a middle part is short (truncated copy?): %w", p, fi.Size(), m.sizes[0], errdefs.ErrDataLoss)
		}
		m.files = append(m.files, f)
		m.sizes = append(m.sizes, fi.Size())
		m.size += fi.Size()
	}
	return m, m.size, nil
}

// multiFile reads files one after the other as one.
type multiFile struct {
	files []*os.File
	sizes []int64
	size  int64
	off   int64 // for Read and Seek
}

func (m *multiFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= m.size {
		return 0, io.EOF
	}
	n := 0
	for i, f := range m.files {
		if off >= m.sizes[i] {
			off -= m.sizes[i]
			continue
		}
		want := min(len(p), n+int(min(m.sizes[i]-off, int64(len(p)))))
		k, err := f.ReadAt(p[n:want], off)
		n += k
		if err != nil && err != io.EOF {
			return n, err
		}
		if n < want {
			return n, fmt.Errorf("part %s: shorter than when it was opened: %w", f.Name(), io.ErrUnexpectedEOF)
		}
		off = 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

func (m *multiFile) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.off)
	m.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (m *multiFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += m.off
	case io.SeekEnd:
		off += m.size
	default:
		return 0, errors.New("multiFile: bad whence " + strconv.Itoa(whence))
	}
	if off < 0 {
		return 0, errors.New("multiFile: negative offset")
	}
	m.off = off
	return off, nil
}

func (m *multiFile) Close() error {
	var first error
	for _, f := range m.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
