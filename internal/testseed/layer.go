package testseed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression selects how a layer blob or a whole archive is compressed.
type Compression int

// Supported compressions. Uncompressed is the zero value so that a Layer
// literal without an explicit choice produces a plain tar.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

// String returns a short name, used in error messages and test names.
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// File is one entry in a layer tar.
//
// Names are written verbatim (apart from a trailing slash added to
// directories, as docker and containerd do) so that tests can build layers
// with absolute paths, "..", or other hostile names.
type File struct {
	Name     string // path inside the layer, e.g. "etc/hello"
	Content  []byte // only allowed for regular files
	Mode     int64  // 0 means the default: 0644 files, 0755 dirs, 0777 symlinks
	Type     byte   // tar.TypeReg (default), tar.TypeDir, tar.TypeSymlink, tar.TypeLink, ...
	Linkname string // target for symlinks and hardlinks
}

// Whiteout returns the entry that deletes p from a lower layer. The
// marker is an empty regular file named ".wh.<base>" next to p, as the
// OCI layer spec (and AUFS before it) defines.
func Whiteout(p string) File {
	p = strings.TrimSuffix(p, "/")
	dir, base := path.Split(p)
	return File{Name: dir + ".wh." + base}
}

// OpaqueDir returns the marker that hides every lower-layer entry below
// directory d while keeping d itself (and anything the same layer adds).
func OpaqueDir(d string) File {
	d = strings.TrimSuffix(d, "/")
	if d == "" {
		return File{Name: ".wh..wh..opq"}
	}
	return File{Name: d + "/.wh..wh..opq"}
}

// Layer is an ordered list of tar entries plus the compression used for
// the stored blob. Entries are written in the given order, never sorted,
// because whiteout/opaque semantics and hardlinks depend on order.
type Layer struct {
	Files       []File
	Compression Compression
}

// layerTar renders the layer's entries as an uncompressed tar.
func layerTar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range files {
		hdr, err := fileHeader(f)
		if err != nil {
			return nil, fmt.Errorf("file %d (%q): %w", i, f.Name, err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("file %d (%q): %w", i, f.Name, err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write(f.Content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fileHeader fills in defaults and pins every field that could otherwise
// leak host state (time, ownership) into the tar bytes.
func fileHeader(f File) (*tar.Header, error) {
	if f.Name == "" {
		return nil, fmt.Errorf("empty name")
	}
	typ := f.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     f.Name,
		Linkname: f.Linkname,
		Mode:     f.Mode,
		ModTime:  FixedTime,
		Uid:      0,
		Gid:      0,
	}
	switch typ {
	case tar.TypeReg:
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		hdr.Size = int64(len(f.Content))
	case tar.TypeDir:
		if hdr.Mode == 0 {
			hdr.Mode = 0o755
		}
		if !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
	case tar.TypeSymlink:
		if hdr.Mode == 0 {
			hdr.Mode = 0o777
		}
	default:
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
	}
	if typ != tar.TypeReg && len(f.Content) > 0 {
		return nil, fmt.Errorf("content given for non-regular entry type %q", typ)
	}
	if (typ == tar.TypeSymlink || typ == tar.TypeLink) && f.Linkname == "" {
		return nil, fmt.Errorf("link entry without Linkname")
	}
	return hdr, nil
}

// compressBytes compresses b in memory with the same encoders Compress
// uses, so blob and archive compression behave identically.
func compressBytes(b []byte, c Compression) ([]byte, error) {
	if c == Uncompressed {
		return b, nil
	}
	var buf bytes.Buffer
	w, err := Compress(&buf, c)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Compress wraps w so that whatever is written comes out gzip- or
// zstd-compressed (e.g. to produce seed.tar.gz / seed.tar.zst). Close
// flushes the compressor but never closes w. For Uncompressed the writer
// passes bytes through unchanged.
//
// The gzip header is left empty (no name, zero mtime) and zstd uses a
// single goroutine, because both would otherwise make output differ from
// run to run or machine to machine.
func Compress(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("testseed: unknown compression %v", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
