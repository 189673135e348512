package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// toolPlugin is containerd-seed's plugin importing the seed dropped into
// its watched directory, timed from the rename to the image record (the
// plugin records an image last, once its layers are unpacked).
const toolPlugin = "plugin"

// pluginDrop copies the seed into a watched seeds dir under a hidden name
// (keeping its mtime, as cp -p and rsync do: the plugin reads a file that
// has not changed for 0.5 s at once), settles, renames it into place and
// waits for the image record.
func (b *bench) pluginDrop(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "seeds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hidden, final := filepath.Join(dir, ".bench.tar"), filepath.Join(dir, "bench.tar")
	if err := copyKeepMtime(b.seed.Path, hidden); err != nil {
		return err
	}
	return b.withPlugin(dir, true, func(d *harness.Daemon) error {
		c, err := d.ClientMain()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := b.settle(hidden); err != nil {
			return err
		}
		pid := daemonPID(d)
		before := procCPU(pid)
		start := time.Now()
		if err := os.Rename(hidden, final); err != nil {
			return err
		}
		nctx := namespaces.WithNamespace(ctx, "default")
		for {
			if _, err := c.ImageService().Get(nctx, imageName); err == nil {
				break
			}
			if time.Since(start) > 10*time.Minute {
				return fmt.Errorf("plugin: %s not imported after 10 minutes:\n%s", imageName, testutil.Tail(d.Log(), 30))
			}
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return err
			}
		}
		s := sample{wall: time.Since(start), daemonCPU: procCPU(pid) - before}
		fmt.Printf("  %-9s %-10s %8.2fs  (rename to image record)   daemon cpu %6.2fs\n", toolPlugin, caseFresh, s.wall.Seconds(), s.daemonCPU.Seconds())
		b.check(d, tool{name: toolPlugin}, caseFresh, true)
		b.res.add(caseFresh, toolPlugin, s)
		return nil
	})
}

// bootSeeds is how many seeds pluginBoot finds in the directory.
const bootSeeds = 10

// pluginBoot starts containerd-seed on a directory of ten distinct seeds
// of 2 to 20 MiB and times, from the daemon's start, its first and its
// last image record.
func (b *bench) pluginBoot(ctx context.Context) (first, last time.Duration, err error) {
	dir, err := os.MkdirTemp("", "boot-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	var names []string
	for i := range bootSeeds {
		name := fmt.Sprintf("docker.io/library/boot-%d:1", i)
		// Named against their size, so name order is not size order.
		if err := writeBootSeed(filepath.Join(dir, fmt.Sprintf("seed-%02d.tar", i)), name, (bootSeeds-i)*2<<20, uint64(i)); err != nil {
			return 0, 0, err
		}
		names = append(names, name)
	}
	syscall.Sync()
	start := time.Now()
	err = b.withPlugin(dir, false, func(d *harness.Daemon) error {
		c, err := d.ClientMain()
		if err != nil {
			return err
		}
		defer c.Close()
		nctx := namespaces.WithNamespace(ctx, "default")
		seen := map[string]bool{}
		for len(seen) < len(names) {
			imgs, err := c.ImageService().List(nctx)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				if !seen[img.Name] {
					seen[img.Name] = true
					if len(seen) == 1 {
						first = time.Since(start)
					}
				}
			}
			if time.Since(start) > 10*time.Minute {
				return fmt.Errorf("plugin boot: %d of %d images after 10 minutes", len(seen), len(names))
			}
			if len(seen) < len(names) {
				if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
					return err
				}
			}
		}
		last = time.Since(start)
		return nil
	})
	return first, last, err
}

// withPlugin runs f on a new containerd-seed whose plugin imports dir
// into the default namespace, watching it or not.
func (b *bench) withPlugin(dir string, watch bool, f func(*harness.Daemon) error) error {
	d, err := harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true, Binary: b.daemon,
		ExtraConfig: fmt.Sprintf("[plugins.\"io.containerd.seed.v1.importer\"]\n  seeds_dir = %q\n  watch = %v\n  namespace = \"default\"\n  pin = false\n", dir, watch)})
	if d != nil {
		defer func() {
			if err := d.StopMain(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: stop %s: %v\n%s", d.Dir, err, testutil.Tail(d.Log(), 25))
			}
			b.stopped = append(b.stopped, d)
		}()
	}
	if err != nil {
		return err
	}
	return f(d)
}

// writeBootSeed writes an OCI seed of one image with a layer of about
// size bytes: half random, half text, so it compresses as images do.
func writeBootSeed(path, name string, size int, seed uint64) error {
	rnd := rand.New(rand.NewPCG(seed, 17))
	random := make([]byte, size/2)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	var text bytes.Buffer
	for text.Len() < size/2 {
		fmt.Fprintf(&text, "line %d of boot seed %d: the quick brown fox\n", text.Len(), seed)
	}
	img := testseed.Image{Name: name, Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, Layers: []testseed.Layer{{
		Compression: testseed.Gzip,
		Files:       []testseed.File{{Name: "data/random", Content: random}, {Name: "data/text", Content: text.Bytes()}},
	}}}
	built, err := testseed.Build(img)
	if err != nil {
		return err
	}
	var s testseed.Seed
	s.Add(name, built.Manifest, built.Blobs)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := s.WriteOCITar(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyKeepMtime(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
