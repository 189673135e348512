package main

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// seedRecipe names the cache file; change it whenever the seed's content or
// layout changes so an old cache is never mistaken for the new seed.
const seedRecipe = "v1"

// seedInfo is stored beside the cached seed so a reuse can print the same
// figures without reading the tar.
type seedInfo struct {
	Path   string
	Size   int64
	Files  int // regular files over all layers
	Layers []layerInfo
}

type layerInfo struct {
	Name    string
	Files   int
	Size    int64 // compressed (the blob)
	RawSize int64 // uncompressed tar
	Digest  digest.Digest
	DiffID  digest.Digest
	path    string // temp file holding the blob, while building
}

// sizes maps -size to the incompressible layer's size.
var sizes = map[string]int64{
	"small": 150 << 20,
	"large": 1900 << 20,
	// bigfiles: 240 library-like files of 2 MiB, the Go toolchain's
	// binaries, 128 MiB of incompressible data and a whiteout layer.
	"bigfiles": 128 << 20,
}

// ensureSeed returns the cached seed for size, building it if absent. A
// flock on the dir keeps concurrent benches from building over each other.
func ensureSeed(ctx context.Context, dir, size string) (seedInfo, bool, error) {
	randSize, ok := sizes[size]
	if !ok {
		return seedInfo{}, false, fmt.Errorf("-size %q: want small, large or bigfiles", size)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return seedInfo{}, false, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return seedInfo{}, false, err
	}
	defer lock.Close() // drops the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return seedInfo{}, false, err
	}
	path := filepath.Join(dir, fmt.Sprintf("bench-%s-%s.tar", seedRecipe, size))
	meta := path + ".json"
	if info, err := readInfo(path, meta); err == nil {
		return info, true, nil
	}
	// Temp files of an interrupted build are ours to remove: we hold the lock.
	for _, pat := range []string{".layer-*", ".seed-*"} {
		olds, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, o := range olds {
			os.Remove(o)
		}
	}
	info, err := buildSeed(ctx, dir, path, size, randSize)
	if err != nil {
		return info, false, err
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return info, false, err
	}
	// The meta file goes last: its presence vouches for the tar.
	return info, false, os.WriteFile(meta, b, 0o644)
}

func readInfo(path, meta string) (seedInfo, error) {
	var info seedInfo
	b, err := os.ReadFile(meta)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	if fi.Size() != info.Size || info.Path != path {
		return info, fmt.Errorf("cached seed %s does not match %s", path, meta)
	}
	return info, nil
}

// buildSeed writes the four layers in parallel to temp files, then the OCI
// layout tar around them. No layer is ever held in memory.
func buildSeed(ctx context.Context, dir, path, size string, randSize int64) (seedInfo, error) {
	goroot := runtime.GOROOT()
	if out, err := goEnv("GOROOT"); err == nil && out != "" {
		goroot = out
	}
	type builder struct {
		name string
		fill func(*tar.Writer) (int, error)
	}
	builders := []builder{
		{"go-src", func(tw *tar.Writer) (int, error) {
			return addTree(tw, filepath.Join(goroot, "src"), "usr/local/go/src")
		}},
		{"go-pkg-tool", func(tw *tar.Writer) (int, error) {
			return addTree(tw, filepath.Join(goroot, "pkg", "tool"), "usr/local/go/pkg/tool")
		}},
		{"random", func(tw *tar.Writer) (int, error) { return addRandom(tw, randSize) }},
		{"config", addConfig},
	}
	if size == "bigfiles" {
		builders = []builder{
			{"libs", func(tw *tar.Writer) (int, error) { return addLibs(tw, 240, 2<<20) }},
			{"go-bin", func(tw *tar.Writer) (int, error) {
				n, err := addTree(tw, filepath.Join(goroot, "pkg", "tool"), "usr/local/go/pkg/tool")
				if err != nil {
					return n, err
				}
				m, err := addTree(tw, filepath.Join(goroot, "bin"), "usr/local/go/bin")
				return n + m, err
			}},
			{"random", func(tw *tar.Writer) (int, error) { return addRandom(tw, randSize) }},
			{"whiteouts", addWhiteouts},
			{"config", addConfig},
		}
	}
	layers := make([]layerInfo, len(builders))
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for i, b := range builders {
		g.Go(func() error {
			l, err := writeLayer(ctx, dir, b.name, b.fill)
			layers[i] = l
			return err
		})
	}
	err := g.Wait()
	defer func() {
		for _, l := range layers {
			if l.path != "" {
				os.Remove(l.path)
			}
		}
	}()
	if err != nil {
		return seedInfo{}, err
	}
	info := seedInfo{Path: path, Layers: layers}
	for _, l := range layers {
		info.Files += l.Files
	}
	if info.Size, err = writeOCITar(dir, path, layers); err != nil {
		return info, err
	}
	return info, nil
}

// writeLayer streams fill's tar through gzip into a temp file, hashing the
// tar (diffID) and the blob (digest) on the way.
func writeLayer(ctx context.Context, dir, name string, fill func(*tar.Writer) (int, error)) (layerInfo, error) {
	l := layerInfo{Name: name}
	f, err := os.CreateTemp(dir, ".layer-"+name+"-")
	if err != nil {
		return l, err
	}
	l.path = f.Name()
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	blob := &hashCounter{h: sha256.New()}
	zw, err := testseed.Compress(ctxWriter{ctx, io.MultiWriter(bw, blob)}, testseed.Gzip)
	if err != nil {
		return l, err
	}
	raw := &hashCounter{h: sha256.New()}
	tw := tar.NewWriter(io.MultiWriter(zw, raw))
	if l.Files, err = fill(tw); err != nil {
		return l, fmt.Errorf("layer %s: %w", name, err)
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			return l, fmt.Errorf("layer %s: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return l, err
	}
	l.Size, l.Digest = blob.n, digest.NewDigest(digest.SHA256, blob.h)
	l.RawSize, l.DiffID = raw.n, digest.NewDigest(digest.SHA256, raw.h)
	return l, f.Close()
}

// ctxWriter fails once ctx is done, so ^C stops a build within a block.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
