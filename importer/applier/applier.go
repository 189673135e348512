// Package applier applies image layers to snapshots in this process when
// the snapshot's directory is local and empty (overlayfs on the same
// node, as root), with fewer syscalls per file than containerd's walking
// differ; anything else goes to a fallback diff.Applier (the daemon's).
package applier

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/moby/sys/userns"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// OpenFunc opens a layer's (compressed) bytes.
type OpenFunc func(context.Context, ocispec.Descriptor) (io.ReadCloser, error)

// Applier is a diff.Applier.
type Applier struct {
	open       OpenFunc
	fallback   diff.Applier
	limits     layerlimit.Limits
	capped     func(digest.Digest) bool
	umask      uint32
	daemonOnly bool
}

// Opt configures an Applier.
type Opt func(*Applier)

// WithLimits holds every layer to the bomb cap: the ones applied here
// while they are decompressed, the ones handed to the fallback before.
func WithLimits(l layerlimit.Limits) Opt { return func(a *Applier) { a.limits = l } }

// WithCapped names the layers already held to the cap (on their way into
// the content store): the fallback gets them without a second count.
func WithCapped(capped func(digest.Digest) bool) Opt { return func(a *Applier) { a.capped = capped } }

// DaemonOnly hands every layer to the fallback.
func DaemonOnly() Opt { return func(a *Applier) { a.daemonOnly = true } }

// New returns an applier that reads layers with open and applies them
// here when it can, handing the rest to fallback.
func New(open OpenFunc, fallback diff.Applier, opts ...Opt) *Applier {
	a := &Applier{open: open, fallback: fallback, capped: func(digest.Digest) bool { return false }, umask: processUmask()}
	for _, o := range opts {
		o(a)
	}
	return a
}

// ProviderOpen opens layers from a content store.
func ProviderOpen(p content.Provider) OpenFunc {
	return func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		ra, err := p.ReaderAt(ctx, desc)
		if err != nil {
			return nil, fmt.Errorf("failed to get reader from content store: %w", err)
		}
		return struct {
			io.Reader
			io.Closer
		}{content.NewReader(ra), ra}, nil
	}
}

// Local reports whether mounts are a snapshot this process can apply to
// itself: one overlay or bind mount whose directory is here and empty,
// and the privileges to make any file in it.
func Local(mounts []mount.Mount) bool {
	_, ok := target(mounts)
	return ok
}

type dest struct {
	root    string
	parents []string
	overlay bool
}

func target(mounts []mount.Mount) (dest, bool) {
	if len(mounts) != 1 || os.Geteuid() != 0 || userns.RunningInUserNS() {
		return dest{}, false
	}
	m := mounts[0]
	var d dest
	switch m.Type {
	case "overlay":
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				d.root = v
			} else if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				d.parents = strings.Split(v, ":")
			}
		}
		d.overlay = true
	case "bind":
		for _, o := range m.Options {
			if o == "ro" {
				return dest{}, false
			}
		}
		d.root = m.Source
	}
	if d.root == "" || !strings.HasPrefix(d.root, "/") {
		return dest{}, false
	}
	f, err := os.Open(d.root)
	if err != nil {
		return dest{}, false
	}
	defer f.Close()
	if names, err := f.Readdirnames(1); len(names) > 0 || err != io.EOF {
		return dest{}, false
	}
	return d, true
}

// Apply implements diff.Applier.
func (a *Applier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount, opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	var cfg diff.ApplyConfig
	for _, o := range opts {
		if err := o(ctx, desc, &cfg); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("failed to apply config opt: %w", err)
		}
	}
	var d dest
	local := false
	if !a.daemonOnly {
		d, local = target(mounts)
	}
	if _, err := images.DiffCompression(ctx, desc.MediaType); err != nil || len(cfg.ProcessorPayloads) > 0 {
		local = false // encrypted or unknown: the daemon's stream processors
	}
	if !local {
		if err := a.checkExpansion(ctx, desc); err != nil {
			return ocispec.Descriptor{}, err
		}
		return a.fallback.Apply(ctx, desc, mounts, opts...)
	}
	log.G(ctx).WithField("digest", desc.Digest).WithField("root", d.root).Debug("applying layer in process")
	return a.apply(ctx, desc, d, cfg)
}

func (a *Applier) apply(ctx context.Context, desc ocispec.Descriptor, d dest, cfg diff.ApplyConfig) (_ ocispec.Descriptor, err error) {
	rc, err := a.decompressed(ctx, desc, cfg.Progress)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer func() {
		// A stream read along with its write into the store says at Close
		// whether the blob was committed; if not, that is the cause of
		// whatever the apply met.
		if cerr := rc.Close(); cerr != nil {
			err = cerr
		}
	}()
	digester := digest.Canonical.Digester()
	cr := &countReader{r: io.TeeReader(rc, digester.Hash())}
	t, err := newTree(ctx, d.root, d.parents, d.overlay, a.umask)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if c, ok := a.limits.Cap(desc); ok {
		t.written = c.Written
	}
	_, err = t.apply(cr)
	t.close()
	if err == nil {
		_, err = io.Copy(io.Discard, cr) // trailing data counts in the diffID
	}
	if err == nil && cfg.SyncFs {
		err = syncFs(d.root)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: cr.n, Digest: digester.Digest()}, nil
}

// decompressed returns the uncompressed stream of desc, capped by the limit.
func (a *Applier) decompressed(ctx context.Context, desc ocispec.Descriptor, progress func(int64)) (io.ReadCloser, error) {
	ra, err := a.open(ctx, desc)
	if err != nil {
		return nil, err
	}
	var r io.Reader = ra
	if progress != nil {
		r = &progressReader{r: r, f: progress}
	}
	// As containerd's applier: a compressed media type's content is
	// sniffed (gzip, zstd or plain), a plain tar type's is taken as it is.
	// 256 KiB of buffer: the reads below it are a seed's or the store's,
	// and the tap's chunks are that size too.
	br := bufio.NewReaderSize(r, 256<<10)
	var ds io.ReadCloser = io.NopCloser(br)
	if c, _ := images.DiffCompression(ctx, desc.MediaType); c != "" {
		if ds, err = decompressStream(br); err != nil {
			ra.Close()
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
	}
	var out io.Reader = ds
	if c, ok := a.limits.Cap(desc); ok {
		out = c.Reader(ds)
	}
	return struct {
		io.Reader
		io.Closer
	}{out, closers{ds, ra}}, nil
}

// checkExpansion holds a layer the daemon will apply to the bomb cap,
// unless it was on its way into the store.
func (a *Applier) checkExpansion(ctx context.Context, desc ocispec.Descriptor) error {
	c, ok := a.limits.Cap(desc)
	if !ok || a.capped(desc.Digest) {
		return nil
	}
	rc, err := a.open(ctx, desc)
	if err != nil {
		return err
	}
	if err := c.Check(rc); err != nil {
		rc.Close()
		return err
	}
	// To the end, and closed: a stream read along with its write into the
	// store is committed only then.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		rc.Close()
		return err
	}
	return rc.Close()
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type progressReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	p.f(p.n)
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func syncFs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// processUmask reads the umask without changing it (which would race with
// other goroutines); if it cannot, every file gets an explicit chmod.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(string(v)), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}
