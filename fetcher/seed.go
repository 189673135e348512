package fetcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotArchive is matched (errors.Is) when a file is no image archive at
// all (a README, a checksum list): not a broken seed, so a seeds dir skips
// it quietly.
var ErrNotArchive = errors.New("not an image archive (no index.json, manifest.json or oci-layout)")

// Seed is one opened and indexed seed.
type Seed struct {
	path   string
	format string
	arch   archive
	index  ocispec.Descriptor

	// mem holds documents the seed implies but does not contain (the
	// index and manifests synthesized for a docker save tarball).
	mem map[digest.Digest][]byte
	// files maps blobs stored under names that are not blobs/<alg>/<hex>.
	files map[digest.Digest]string
	// repoTags are manifest.json names of an OCI layout written by docker.
	repoTags []repoTag
	// zarf: the seed is a zarf package; its entries are named by
	// org.opencontainers.image.base.name.
	zarf bool
	// deltaInfo is what a delta seed leaves out (images.go), read once.
	deltaOnce sync.Once
	deltaInfo *deltaInfo
	// images are the index's entries (Images), read once.
	imagesOnce sync.Once
	images     []Image
	imagesErr  error
	// links index the images' attachments and referrers (entries), once.
	linksOnce sync.Once
	links     *entryLinks
}

type repoTag struct {
	name   string
	config digest.Digest
}

// Opt configures Open.
type Opt func(*openConfig)

type openConfig struct {
	spoolDir      string
	maxSpoolBytes int64
	stdin         io.Reader // what "-" reads (OpenAll); nil: no stdin
}

// WithSpoolDir sets where a whole-archive-compressed seed is decompressed
// to (an unlinked file); default os.TempDir(). WithMaxSpoolBytes caps it.
func WithSpoolDir(dir string) Opt { return func(c *openConfig) { c.spoolDir = dir } }

// newOpenConfig applies opts to the defaults.
func newOpenConfig(opts []Opt) openConfig {
	cfg := openConfig{maxSpoolBytes: DefaultMaxSpoolBytes}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Open indexes the seed at path: an OCI layout directory, or an OCI layout
// or docker save tar, possibly gzip- or zstd-compressed as a whole.
func Open(ctx context.Context, path string, opts ...Opt) (*Seed, error) {
	cfg := newOpenConfig(opts)
	s := &Seed{path: path, mem: map[digest.Digest][]byte{}, files: map[digest.Digest]string{}}
	arch, format, err := openArchive(path, cfg)
	return s.indexArchive(ctx, arch, format, err)
}

// indexArchive loads the seed from its opened archive (closed on failure).
func (s *Seed) indexArchive(ctx context.Context, arch archive, format string, err error) (*Seed, error) {
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	s.arch, s.format = arch, format
	if err := s.load(ctx); err != nil {
		arch.Close()
		return nil, err
	}
	log.G(ctx).WithField("seed", s.path).WithField("format", s.format).Debug("seed indexed")
	return s, nil
}

// unlinkedFile creates a file in dir that is gone from the directory at
// once: its space comes back when it is closed, or when the process dies.
func unlinkedFile(dir, pattern string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("creating spool file in %s: %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlinking spool file in %s: %w", dir, err)
	}
	return f, nil
}

func openArchive(path string, cfg openConfig) (archive, string, error) {
	if parts, h, ok, err := zarfParts(path); err != nil {
		return nil, "", err
	} else if ok {
		f, size, err := openZarfParts(path, parts, h)
		if err != nil {
			return nil, "", err
		}
		a, format, err := openSeedFile(f, size, cfg)
		return a, format + fmt.Sprintf(" (zarf split, %d parts)", len(parts)), err
	}
	if parts, err := splitParts(path); err != nil {
		return nil, "", err
	} else if len(parts) > 0 {
		f, size, err := openParts(parts)
		if err != nil {
			return nil, "", err
		}
		a, format, err := openSeedFile(f, size, cfg)
		if errors.Is(err, errTruncated) {
			err = fmt.Errorf("its %d parts %s to %s end inside the archive (a later part missing?): %w", len(parts), filepath.Base(parts[0]), filepath.Base(parts[len(parts)-1]), err)
		}
		return a, format + fmt.Sprintf(" (split, %d parts)", len(parts)), err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if fi.IsDir() {
		d, err := openDir(path)
		return d, "dir", err
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("not a regular file or directory (%s): %w", fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	osf, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	return openFile(osf, fi.Size(), cfg)
}

// openFile indexes a seed file (closed on failure).
func openFile(osf *os.File, size int64, cfg openConfig) (archive, string, error) {
	return openSeedFile(wrapFile(osf), size, cfg)
}

// openSeedFile indexes a seed read through f: a file, or the parts of a
// split seed as one (closed on failure).
func openSeedFile(f seedFile, size int64, cfg openConfig) (archive, string, error) {
	head := make([]byte, 10)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		f.Close()
		return nil, "", err
	}
	c, err := detect(head[:n])
	if err != nil {
		f.Close()
		return nil, "", err
	}
	if c != plain {
		t, err := spoolTar(io.NewSectionReader(f, 0, size), c, cfg.spoolDir, cfg.maxSpoolBytes)
		f.Close()
		return t, "tar+" + string(c), err
	}
	idx, err := indexTar(seekPosReader{posReader: &posReader{r: f}, s: f})
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return &tarArchive{ra: f, closer: f, idx: idx}, "tar", nil
}

// seedFile is what a tar seed is read through; tests wrap it to count I/O.
type seedFile interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
}

var wrapFile = func(f *os.File) seedFile { return f }

func (s *Seed) load(ctx context.Context) error {
	if _, err := s.arch.lookup(zarfPackageFile); err == nil {
		if _, err := s.arch.lookup(zarfImagesDir + "/" + ocispec.ImageLayoutFile); err != nil {
			return s.errorf("a zarf package without images (no %s/%s): %w: %w", zarfImagesDir, ocispec.ImageLayoutFile, ErrNotArchive, errdefs.ErrInvalidArgument)
		}
		s.arch, s.zarf = subArchive{s.arch, zarfImagesDir}, true
		s.format = "zarf-" + s.format
		return s.loadLayout(ctx)
	}
	if _, err := s.arch.lookup(ocispec.ImageLayoutFile); err == nil {
		s.format = "oci-" + s.format
		return s.loadLayout(ctx)
	} else if !errdefs.IsNotFound(err) {
		return s.errorf("%w", err)
	}
	if _, err := s.arch.lookup(ocispec.ImageIndexFile); err == nil {
		// index.json and blobs/ without oci-layout (hauler's `store save
		// --containerd`, beside a docker manifest.json): a layout still.
		s.format = "oci-" + s.format
		return s.loadLayout(ctx)
	}
	if _, err := s.arch.lookup(dockerManifestFile); err == nil {
		s.format = "docker-" + s.format
		return s.loadDocker(ctx)
	} else if !errdefs.IsNotFound(err) {
		return s.errorf("%w", err)
	}
	return s.errorf("%w: %w", ErrNotArchive, errdefs.ErrInvalidArgument)
}

// Path is the seed's file or directory name, as given to Open.
func (s *Seed) Path() string { return s.path }

// Format names the seed's format, e.g. "oci-tar+zstd", "docker-tar", "oci-dir".
func (s *Seed) Format() string { return s.format }

// Index is the seed's root index (synthesized for docker save tarballs, with
// the same bytes containerd's importer writes).
func (s *Seed) Index() ocispec.Descriptor { return s.index }

// Close releases the seed's files (and its spool).
func (s *Seed) Close() error { return s.arch.Close() }

func (s *Seed) errorf(format string, args ...any) error {
	return &SeedError{Seed: s.path, Err: fmt.Errorf(format, args...)}
}

func (s *Seed) blobErr(d digest.Digest, format string, args ...any) error {
	return &SeedError{Seed: s.path, Err: fmt.Errorf("blob %s: "+format, append([]any{d}, args...)...)}
}

// blob finds the file that holds digest d.
func (s *Seed) blob(d digest.Digest) (file, error) {
	if b, ok := s.mem[d]; ok {
		return memFile(d.String(), b), nil
	}
	if name, ok := s.files[d]; ok {
		return s.arch.lookup(name)
	}
	if err := d.Validate(); err != nil {
		return file{}, fmt.Errorf("invalid digest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return s.arch.lookup("blobs/" + d.Algorithm().String() + "/" + d.Encoded())
}

func memFile(name string, b []byte) file {
	return file{name: name, size: int64(len(b)), open: func() (io.ReaderAt, io.Closer, error) {
		return bytes.NewReader(b), io.NopCloser(nil), nil
	}}
}

// Has reports whether the seed holds d, and its size.
func (s *Seed) Has(d digest.Digest) (int64, bool) {
	f, err := s.blob(d)
	if err != nil {
		return 0, false
	}
	return f.size, true
}

// Fetch streams the blob desc names, verified against its digest and size
// as it is read: the reader fails at EOF on any mismatch.
func (s *Seed) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.fetchRaw(desc)
	if err != nil {
		return nil, err
	}
	v := newVerifier(rc, rc, "", desc.Digest, desc.Size)
	v.seed = s.path
	v.file = s.files[desc.Digest] // a docker save layer's own name, if any
	return v, nil
}

// fetchRaw is the blob's bytes as the seed holds them, size checked.
func (s *Seed) fetchRaw(desc ocispec.Descriptor) (io.ReadCloser, error) {
	f, err := s.blob(desc.Digest)
	if err != nil {
		return nil, s.blobErr(desc.Digest, "%w", err)
	}
	if desc.Size < 0 {
		return nil, s.blobErr(desc.Digest, "invalid descriptor size %d: %w", desc.Size, errdefs.ErrInvalidArgument)
	}
	if f.size != desc.Size {
		return nil, s.blobErr(desc.Digest, "size mismatch: expected %d bytes, seed has %d: %w", desc.Size, f.size, errdefs.ErrDataLoss)
	}
	ra, closer, err := f.open()
	if err != nil {
		return nil, s.blobErr(desc.Digest, "%w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(ra, 0, f.size), closer}, nil
}

// ReadBlob reads a small blob (at most MaxJSONSize) fully and verified.
func (s *Seed) ReadBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	size := desc.Size
	if f, err := s.blob(desc.Digest); err == nil && f.size > size {
		size = f.size // the cap is on what would be read, whatever desc says
	}
	if size > MaxJSONSize {
		return nil, s.blobErr(desc.Digest, "%d bytes exceeds the %d byte cap for documents: %w", size, MaxJSONSize, errdefs.ErrInvalidArgument)
	}
	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, MaxJSONSize+1))
}

// ReaderAt makes a Seed a content.Provider, so containerd's image helpers
// (images.Manifest, images.Platforms, images.ChildrenHandler) read it
// directly. The whole blob is verified before the reader is returned.
func (s *Seed) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Size >= 0 && desc.Size <= MaxJSONSize {
		b, err := s.ReadBlob(ctx, desc)
		if err != nil {
			return nil, err
		}
		return memReaderAt{bytes.NewReader(b)}, nil
	}
	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	f, err := s.blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	ra, closer, err := f.open()
	if err != nil {
		return nil, s.blobErr(desc.Digest, "%w", err)
	}
	return sectionReaderAt{io.NewSectionReader(ra, 0, f.size), closer}, nil
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

type sectionReaderAt struct {
	*io.SectionReader
	io.Closer
}

// readFile reads a document from the archive, capped at MaxJSONSize.
func (s *Seed) readFile(name string) ([]byte, error) {
	f, err := s.arch.lookup(name)
	if err != nil {
		return nil, err
	}
	if f.size > MaxJSONSize {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d byte cap: %w", name, f.size, MaxJSONSize, errdefs.ErrInvalidArgument)
	}
	ra, closer, err := f.open()
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(ra, 0, f.size), MaxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) != f.size {
		return nil, fmt.Errorf("%s: truncated: expected %d bytes, got %d: %w", name, f.size, len(b), errdefs.ErrDataLoss)
	}
	return b, nil
}
