package fetcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// zarf's packages are seeds too. A package (`zarf package create`) is a
// tar, zstd-compressed as a whole, holding zarf.yaml and an OCI image
// layout under images/, whose index names each image by the annotation
// org.opencontainers.image.base.name. A package split with
// --max-package-size is NAME.part000, a JSON header
// {"Sha256Sum","Bytes","Count"}, then NAME.part001 … NAME.partCOUNT, the
// package's bytes in order (zarf's src/internal/split). Both are read in
// place: the parts as one file, after checking them against the header.

const (
	zarfPackageFile   = "zarf.yaml"
	zarfImagesDir     = "images"
	maxZarfHeaderSize = 4096
	// annotationBaseName is where zarf's image layout keeps each entry's
	// reference (in OCI it names an image's base; only zarf's layout is
	// read this way).
	annotationBaseName = "org.opencontainers.image.base.name"
)

var zarfHeaderRE = regexp.MustCompile(`^(.*)\.part000$`)

type zarfHeader struct {
	Sha256Sum string
	Bytes     int64
	Count     int
}

// zarfParts reads the header of the zarf split package path names (its
// .part000) and lists its data parts; ok is false when path is no such
// header. A missing part is an error naming it.
func zarfParts(p string) (parts []string, h zarfHeader, ok bool, err error) {
	m := zarfHeaderRE.FindStringSubmatch(p)
	if m == nil {
		return nil, h, false, nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, h, false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxZarfHeaderSize {
		return nil, h, false, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, h, false, err
	}
	if json.Unmarshal(b, &h) != nil || h.Count < 1 {
		return nil, h, false, nil // not zarf's header: read as a file
	}
	name := path.Base(m[1])
	if h.Count > 999 || h.Bytes < 0 || len(h.Sha256Sum) != 64 || strings.Trim(h.Sha256Sum, "0123456789abcdef") != "" {
		return nil, h, true, fmt.Errorf("zarf split package %s: header %s: %d parts, %d bytes, sha256 %q: not a header zarf writes: %w",
			name, path.Base(p), h.Count, h.Bytes, h.Sha256Sum, errdefs.ErrInvalidArgument)
	}
	for n := 1; n <= h.Count; n++ {
		part := fmt.Sprintf("%s.part%03d", m[1], n)
		if _, err := os.Lstat(part); err != nil {
			return nil, h, true, fmt.Errorf("zarf split package %s: part %s is missing (its header says %d parts): %w",
				name, path.Base(part), h.Count, errdefs.ErrNotFound)
		}
		parts = append(parts, part)
	}
	return parts, h, true, nil
}

// openZarfParts opens the data parts as one file, checked against the
// header: the size, then the sha256 of the whole (one sequential read; the
// blobs inside are verified again as they are served).
func openZarfParts(p string, parts []string, h zarfHeader) (seedFile, int64, error) {
	name := strings.TrimSuffix(path.Base(p), ".part000")
	f, size, err := openParts(parts)
	if err != nil {
		return nil, 0, err
	}
	if size != h.Bytes {
		f.Close()
		return nil, 0, fmt.Errorf("zarf split package %s: its %d parts hold %d bytes, its header says %d (a part short or missing?): %w",
			name, len(parts), size, h.Bytes, errdefs.ErrDataLoss)
	}
	hash := sha256.New()
	if _, err := io.Copy(hash, io.NewSectionReader(f, 0, size)); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("zarf split package %s: %w", name, err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != h.Sha256Sum {
		f.Close()
		return nil, 0, fmt.Errorf("zarf split package %s: sha256 mismatch: expected %s (its header), got %s: %w",
			name, h.Sha256Sum, got, errdefs.ErrDataLoss)
	}
	return f, size, nil
}

// ZarfSplit reports whether path is a zarf split package's header, and
// whether every part its header names is there with all the bytes.
func ZarfSplit(p string) (isZarf, complete bool) {
	parts, h, ok, err := zarfParts(p)
	if !ok {
		return false, false
	}
	if err != nil {
		return true, false
	}
	var n int64
	for _, part := range parts {
		fi, err := os.Stat(part)
		if err != nil {
			return true, false
		}
		n += fi.Size()
	}
	return true, n == h.Bytes
}

// zarfLaterPartRE matches a zarf package's data parts: the package is
// named by its header, .part000.
var zarfLaterPartRE = regexp.MustCompile(`\.part(00[1-9]|0[1-9][0-9]|[1-9][0-9][0-9])$`)

// subArchive is the part of an archive below dir: zarf's images/ layout.
type subArchive struct {
	archive
	dir string
}

func (s subArchive) lookup(name string) (file, error) { return s.archive.lookup(s.dir + "/" + name) }

func (s subArchive) list(dir string) ([]string, error) {
	names, err := s.archive.list(s.dir + "/" + dir)
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, s.dir+"/")
	}
	return names, err
}
