package fetcher

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The decompression-bomb guard. containerd's applier decompresses a layer
// with no bound on what comes out: a few MB of gzip can fill the
// snapshotter's disk. So while a layer streams out of a seed, the same
// bytes go to a decompressor that only counts, and the stream fails before
// its end (so the content store never commits the blob) once the count
// passes the cap.

const (
	// DefaultMaxExpansionRatio is how many times its compressed size a
	// layer may expand to (above DefaultMinExpansionAllowance).
	DefaultMaxExpansionRatio = 200
	// DefaultMinExpansionAllowance is what any layer may expand to,
	// whatever its ratio: small zero-filled layers are fine.
	DefaultMinExpansionAllowance int64 = 1 << 30
)

// layerLimits caps a layer's uncompressed size: beyond
// max(ratio × compressed, allowance) when ratio > 0, and beyond maxBytes
// when maxBytes > 0.
type layerLimits struct {
	ratio     int
	allowance int64
	maxBytes  int64
}

var defaultLayerLimits = layerLimits{ratio: DefaultMaxExpansionRatio, allowance: DefaultMinExpansionAllowance}

// WithLayerLimits sets the decompression-bomb cap of layers served from
// the seed: a layer whose uncompressed size exceeds
// max(ratio × compressed size, allowance) is refused. ratio 0 disables the
// cap. Defaults: DefaultMaxExpansionRatio, DefaultMinExpansionAllowance.
func WithLayerLimits(ratio int, allowance int64) Opt {
	return func(c *openConfig) {
		c.limits.ratio, c.limits.allowance = max(ratio, 0), max(allowance, 0)
	}
}

// WithMaxLayerBytes caps every layer's uncompressed size at n bytes,
// whatever its ratio; 0 (the default) sets no such cap.
func WithMaxLayerBytes(n int64) Opt {
	return func(c *openConfig) { c.limits.maxBytes = max(n, 0) }
}

// limit is the most a layer of the given compressed size may expand to;
// ok is false when nothing caps it.
func (l layerLimits) limit(compressed int64) (n int64, ok bool) {
	n = math.MaxInt64
	if l.ratio > 0 {
		r := int64(math.MaxInt64)
		if compressed <= math.MaxInt64/int64(l.ratio) {
			r = compressed * int64(l.ratio)
		}
		n, ok = max(r, l.allowance), true
	}
	if l.maxBytes > 0 && l.maxBytes < n {
		n, ok = l.maxBytes, true
	}
	return n, ok
}

// applierDecompresses reports whether desc is a layer, and whether
// containerd's applier decompresses it (the media type says gzip or zstd,
// or is docker's plain layer type, whose content the applier sniffs) or
// takes it as a plain tar.
func applierDecompresses(desc ocispec.Descriptor) (layer, decompressed bool) {
	if !images.IsLayerType(desc.MediaType) {
		return false, false
	}
	c, err := images.DiffCompression(context.Background(), desc.MediaType)
	if err != nil {
		return false, false // not a tar layer containerd applies (e.g. erofs)
	}
	return true, c != ""
}

// guard wraps rc, the verified stream of desc, with the bomb cap; a
// layer the applier takes as a plain tar is checked by its size alone.
func (s *Seed) guard(desc ocispec.Descriptor, rc io.ReadCloser) (io.ReadCloser, error) {
	layer, decompressed := applierDecompresses(desc)
	if !layer {
		return rc, nil
	}
	limit, ok := s.limits.limit(desc.Size)
	if !ok {
		return rc, nil
	}
	if !decompressed {
		if desc.Size > limit {
			rc.Close()
			return nil, s.expandErr(desc.Digest, plain, limit, desc.Size, desc.Size)
		}
		return rc, nil
	}
	g := &guardedReader{
		rc:    rc,
		size:  desc.Size,
		limit: limit,
		q:     make(chan []byte, guardBuffers),
		free:  make(chan []byte, guardBuffers),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	g.bomb = func(c codec, counted int64) error { return s.expandErr(desc.Digest, c, limit, counted, desc.Size) }
	go g.count()
	return g, nil
}

// expandErr is the error for a layer that expands beyond limit.
func (s *Seed) expandErr(d digest.Digest, c codec, limit, counted, compressed int64) error {
	if c == plain {
		return s.blobErr(d, "uncompressed layer of %d bytes is beyond the %d byte cap: %w", counted, limit, errdefs.ErrInvalidArgument)
	}
	ratio := counted
	if compressed > 0 {
		ratio = counted / compressed
	}
	return s.blobErr(d, "decompression bomb: expands beyond %d bytes (ratio %d:1 of %d compressed): %w", limit, ratio, compressed, errdefs.ErrInvalidArgument)
}

// At most guardBuffers chunks of guardChunk bytes are in flight between
// the reader and the counter: the memory a guarded stream holds, beside
// the decompressor's own (a gzip window, or zstd's capped one).
const (
	guardChunk   = 256 << 10
	guardBuffers = 4
)

// guardedReader passes the verified stream through and feeds a copy to a
// counting decompressor in its own goroutine, so counting overlaps with
// whatever the caller does with the bytes. The read that reaches the end
// waits for the count.
type guardedReader struct {
	rc    io.ReadCloser
	size  int64 // compressed
	limit int64
	bomb  func(c codec, counted int64) error

	q     chan []byte   // chunks for the counter; closed at the end of input
	free  chan []byte   // chunks the counter is done with
	nbufs int           // chunks allocated (reader side only)
	stop  chan struct{} // closed by Close: the counter must quit
	done  chan struct{} // closed when the counter has quit
	off   atomic.Bool   // the counter wants no more input

	mu      sync.Mutex
	verdict error // set by the counter when the cap is passed

	err       error // sticky result of Read
	qClosed   bool
	closeOnce sync.Once
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.bombed(); err != nil {
		g.err = err
		return 0, err
	}
	n, err := g.rc.Read(p)
	if n > 0 {
		g.feed(p[:n])
	}
	switch {
	case err == io.EOF:
		// The blob is whole and verified; it is good only if it does not
		// expand too far either: wait for the count.
		g.endInput()
		<-g.done
		if b := g.bombed(); b != nil {
			g.err = b
			return n, b
		}
		g.err = io.EOF
	case err != nil:
		g.err = err
	default:
		if b := g.bombed(); b != nil {
			g.err = b
			return n, b
		}
	}
	return n, err
}

// Close stops the counter, waits for it, and closes the stream.
func (g *guardedReader) Close() error {
	g.closeOnce.Do(func() { close(g.stop) })
	<-g.done
	return g.rc.Close()
}

func (g *guardedReader) bombed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.verdict
}

func (g *guardedReader) setVerdict(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.verdict = err
}

// feed copies p into chunks for the counter; it blocks only while
// guardBuffers chunks wait to be counted.
func (g *guardedReader) feed(p []byte) {
	for len(p) > 0 && !g.off.Load() {
		var b []byte
		select {
		case b = <-g.free:
		default:
			if g.nbufs < guardBuffers {
				g.nbufs++
				b = make([]byte, guardChunk)
				break
			}
			select {
			case b = <-g.free:
			case <-g.done:
				return
			}
		}
		b = b[:copy(b[:cap(b)], p)]
		p = p[len(b):]
		g.q <- b // never blocks: there are only guardBuffers chunks
	}
}

func (g *guardedReader) endInput() {
	if !g.qClosed {
		g.qClosed = true
		close(g.q)
	}
}

var errGuardStopped = errors.New("guard stopped")

// count is the counter goroutine: it sniffs the compression as the
// applier does (the media type only says whether it will decompress) and
// counts what comes out, up to the limit.
func (g *guardedReader) count() {
	defer close(g.done)
	defer g.off.Store(true)
	src := bufio.NewReaderSize(&chunkReader{g: g}, 64<<10)
	head, _ := src.Peek(8)
	c, err := detect(head)
	if err != nil {
		return // xz or bzip2: the applier refuses them
	}
	if c == plain {
		// The applier sniffs plain content too, and takes it as is.
		if g.size > g.limit {
			g.setVerdict(g.bomb(c, g.size))
		}
		return
	}
	dec, err := decompressor(src, c)
	if err != nil {
		return // a corrupt stream: the applier will say so
	}
	defer dec.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := dec.Read(buf)
		n += int64(m)
		if n > g.limit {
			g.setVerdict(g.bomb(c, n))
			return
		}
		if err != nil {
			// The end of the stream, a corrupt one (the applier or the
			// digest will say), or Close.
			return
		}
	}
}

// chunkReader reads the counter's input from the queue.
type chunkReader struct {
	g   *guardedReader
	cur []byte // unread part of buf
	buf []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.buf != nil {
			c.g.free <- c.buf // never blocks: free has room for every chunk
			c.buf = nil
		}
		select {
		case b, ok := <-c.g.q:
			if !ok {
				return 0, io.EOF
			}
			c.buf, c.cur = b, b
		case <-c.g.stop:
			return 0, errGuardStopped
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}
