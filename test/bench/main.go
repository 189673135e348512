// Command bench times `ctr-seed import` and `ctr-seed import --in-daemon`
// against `ctr images import` (which goes through containerd's transfer
// service) on a realistic seed: the Go
// toolchain's source tree, its pkg/tool binaries, a large incompressible
// file and a small config layer, gzip-compressed in an OCI layout tar.
//
// Every run gets a fresh private containerd-seed (containerd with the seed
// plugin, idle), so no tool profits from another's content. Rounds rotate
// the order of the tools. It prints medians, min–max, the tool/ctr ratios
// and ctr-seed's peak RSS, and
// "TARGET MISSED" lines against the next goals; it is a measurement, so it
// exits 0 whatever the figures (1 only if it could not measure).
//
//	go run ./test/bench [-pairs 3] [-size small|large]
//
// CTR_SEED_CPUPROFILE=/tmp/ctr-seed-%p.prof profiles each ctr-seed run;
// CTR_SEED_BENCH_ARGS adds arguments to its import (e.g. --debug, with -v).
//
// The seed is cached in $CTR_SEED_BENCH_DIR (default $TMPDIR/ctr-seed-bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

func main() {
	pairs := flag.Int("pairs", 3, "rounds: each runs every tool once, in rotating order")
	size := flag.String("size", "small", "seed: small (~200 MB, many small files), large (~2 GB, for RSS flatness) or bigfiles (~400 MB of big files and a whiteout layer)")
	verbose := flag.Bool("v", false, "print each tool's output")
	drop := flag.Bool("drop-caches", true, "sync and drop the kernel's caches before each run (see settle)")
	fresh := flag.Bool("fresh-fs", true, "run the daemons on a new loop-mounted ext4 (see freshFS); false: in $TMPDIR")
	bootOnly := flag.Bool("boot-only", false, "time only the plugin's boot import of ten seeds")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{pairs: *pairs, size: *size, verbose: *verbose, drop: *drop, freshFS: *fresh, res: results{}, bootOnly: *bootOnly}
	if err := b.run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	pairs    int
	size     string
	verbose  bool
	drop     bool
	seed     seedInfo
	daemon   string // containerd-seed
	seedsDir string // its (empty) seeds dir
	stopped  []*harness.Daemon
	freshFS  bool
	tools    []tool
	res      results

	bootFirst, bootLast time.Duration // pluginBoot's
	bootOnly            bool
}

// tool is one importer under test; argv builds its command line.
type tool struct {
	name string
	argv func(addr string, extra ...string) []string
}

func (b *bench) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (containerd and its snapshotter need it)")
	}
	if b.pairs < 1 {
		return fmt.Errorf("-pairs must be at least 1")
	}
	start := time.Now()
	dir := os.Getenv("CTR_SEED_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ctr-seed-bench")
	}
	fmt.Printf("== seed (%s) in %s\n", b.size, dir)
	t0 := time.Now()
	var cached bool
	var err error
	if b.seed, cached, err = ensureSeed(ctx, dir, b.size); err != nil {
		return fmt.Errorf("building seed: %w", err)
	}
	how := fmt.Sprintf("built in %v", time.Since(t0).Round(time.Second))
	if cached {
		how = "cached"
	}
	fmt.Printf("%s: %s, %d files, %s\n", b.seed.Path, progress.Bytes(b.seed.Size), b.seed.Files, how)
	for _, l := range b.seed.Layers {
		fmt.Printf("  layer %-12s %6d files  %10s gzip  %10s tar  %s\n", l.Name, l.Files,
			progress.Bytes(l.Size), progress.Bytes(l.RawSize), l.Digest)
	}

	fmt.Println("== building ctr-seed, and containerd/ctr at the pinned version (cached)")
	ctrSeed, bins, err := harness.CtrSeedMain()
	if err != nil {
		return err
	}
	// Every tool runs against containerd-seed: containerd plus the seed
	// plugin (idle: its seeds dir is empty), so --in-daemon can be timed
	// against the same daemon as ctr.
	if b.daemon, err = harness.BuildCommandMain("./cmd/containerd-seed"); err != nil {
		return err
	}
	if b.seedsDir, err = os.MkdirTemp("", "ctr-seed-bench-seeds-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.seedsDir)
	defer b.cleanup()
	fmt.Printf("containerd %s, %s, %d CPUs, drop caches before each run: %v, pigz used by containerd: %v\n", bins.Version, runtime.Version(), runtime.NumCPU(), b.drop, pigzUsed())
	if b.freshFS {
		// Room for every daemon of the bench: content and snapshots, each
		// about twice the seed, for 3 tools × 2 daemons a round, plus one.
		size := (int64(b.pairs)*6 + 1) * 3 * b.seed.Size
		mnt, umount, err := freshFS(dir, size)
		if err != nil {
			return fmt.Errorf("fresh file system (or run with -fresh-fs=false): %w", err)
		}
		defer func() { b.cleanup(); umount() }()
		os.Setenv("TMPDIR", mnt) // where the harness makes each daemon's dir
		fmt.Printf("daemons on a fresh ext4 of %s at %s\n", progress.Bytes(size), mnt)
	}
	b.tools = []tool{
		{"ctr-seed", func(addr string, extra ...string) []string {
			args := []string{ctrSeed, "--address", addr, "--namespace", "default", "import"}
			args = append(args, strings.Fields(os.Getenv("CTR_SEED_BENCH_ARGS"))...)
			return append(append(args, extra...), b.seed.Path)
		}},
		{"ctr", func(addr string, extra ...string) []string {
			return append(append([]string{bins.Ctr, "--address", addr, "--namespace", "default", "images", "import"}, extra...), b.seed.Path)
		}},
		{"in-daemon", func(addr string, extra ...string) []string {
			return append(append([]string{ctrSeed, "--address", addr, "--namespace", "default", "import", "--in-daemon"}, extra...), b.seed.Path)
		}},
	}

	// One untimed import first: right after mass deletes (an earlier
	// bench's or test's cleanup) this disk makes files far more slowly for
	// a while, which would land on whichever run came first.
	fmt.Println("== warm-up (untimed)")
	if err := b.withDaemon(func(d *harness.Daemon) error {
		return exec.CommandContext(ctx, b.tools[1].argv(d.Address)[0], b.tools[1].argv(d.Address)[1:]...).Run()
	}); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for p := 0; p < b.pairs && !b.bootOnly; p++ {
		// Rotate the order, so no tool always runs first or last.
		order := append(slices.Clone(b.tools[p%len(b.tools):]), b.tools[:p%len(b.tools)]...)
		var names []string
		for _, t := range order {
			names = append(names, t.name)
		}
		fmt.Printf("== round %d/%d: %s\n", p+1, b.pairs, strings.Join(names, ", then "))
		for _, t := range order {
			if err := b.unpacked(ctx, t); err != nil {
				return err
			}
		}
		if err := b.pluginDrop(ctx); err != nil {
			return err
		}
		s, err := b.floor(ctx)
		if err != nil {
			return err
		}
		b.res.add(caseFresh, toolFloor, s)
		for _, t := range order {
			if err := b.noUnpack(ctx, t); err != nil {
				return err
			}
		}
	}
	if b.size != "large" {
		fmt.Printf("== plugin boot: %d seeds in its directory\n", bootSeeds)
		if b.bootFirst, b.bootLast, err = b.pluginBoot(ctx); err != nil {
			return err
		}
		fmt.Printf("  first image %.2fs, last %.2fs\n", b.bootFirst.Seconds(), b.bootLast.Seconds())
	}
	fmt.Println()
	b.report(os.Stdout)
	fmt.Printf("\ntotal bench time %v\n", time.Since(start).Round(time.Second))
	return nil
}

// unpacked times a fresh import and then a re-import on one new daemon.
func (b *bench) unpacked(ctx context.Context, t tool) error {
	return b.withDaemon(func(d *harness.Daemon) error {
		s, err := b.timed(ctx, d, caseFresh, t, t.argv(d.Address))
		if err != nil {
			return err
		}
		b.check(d, t, caseFresh, true)
		b.res.add(caseFresh, t.name, s)
		if s, err = b.timed(ctx, d, caseReimport, t, t.argv(d.Address)); err != nil {
			return err
		}
		b.check(d, t, caseReimport, true)
		b.res.add(caseReimport, t.name, s)
		return nil
	})
}

// noUnpack times a fresh --no-unpack import on a new daemon.
func (b *bench) noUnpack(ctx context.Context, t tool) error {
	return b.withDaemon(func(d *harness.Daemon) error {
		s, err := b.timed(ctx, d, caseNoUnpack, t, t.argv(d.Address, "--no-unpack"))
		if err != nil {
			return err
		}
		b.check(d, t, caseNoUnpack, false)
		b.res.add(caseNoUnpack, t.name, s)
		return nil
	})
}

func (b *bench) withDaemon(f func(*harness.Daemon) error) error {
	d, err := harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true, Binary: b.daemon,
		ExtraConfig: fmt.Sprintf("[plugins.\"io.containerd.seed.v1.importer\"]\n  seeds_dir = %q\n  watch = false\n", b.seedsDir)})
	if d != nil {
		// Stop now, delete at the end: on this VM's ext4 (mounted with
		// discard) files made soon after a mass delete cost up to 50×
		// more, which would charge each run for the previous one's cleanup.
		defer func() {
			if err := d.StopMain(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: stop %s: %v\n", d.Dir, err)
			}
			b.stopped = append(b.stopped, d)
		}()
	}
	if err != nil {
		return err
	}
	return f(d)
}

// cleanup deletes every daemon's files, once all runs are done.
func (b *bench) cleanup() {
	for _, d := range b.stopped {
		if err := d.Cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cleanup %s: %v\n", d.Dir, err)
		}
	}
	b.stopped = nil
}

// timed runs argv once and measures wall time, the child's CPU time and
// peak RSS (its rusage), and the daemon's CPU time over the same span.
func (b *bench) timed(ctx context.Context, d *harness.Daemon, c string, t tool, argv []string) (sample, error) {
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	pid := daemonPID(d)
	if err := b.settle(argv[0]); err != nil {
		return sample{}, err
	}
	before := procCPU(pid)
	out := &tailBuffer{max: 32 << 10}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	s := sample{wall: wall, daemonCPU: procCPU(pid) - before}
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	if b.verbose || err != nil {
		fmt.Printf("$ %s\n%s", strings.Join(argv, " "), out.String())
	}
	if err != nil {
		return s, fmt.Errorf("%s %s: %w\n--- containerd log tail:\n%s", t.name, c, err, testutil.Tail(d.Log(), 30))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rssKiB = ru.Maxrss
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	fmt.Printf("  %-9s %-10s %8.2fs  client cpu %6.2fs  daemon cpu %6.2fs  rss %4d MB\n",
		t.name, c, wall.Seconds(), s.cpu.Seconds(), s.daemonCPU.Seconds(), s.rssKiB/1024)
	return s, nil
}

// check verifies, outside the timing, that the import did what it says:
// the image is named, all blobs are in the store, and the layers are
// unpacked (or not). A failed check is printed, not fatal.
func (b *bench) check(d *harness.Daemon, t tool, c string, unpack bool) {
	layers, snaps := len(b.seed.Layers), 0
	if unpack {
		snaps = layers
	}
	imgs, err := d.CtrMain("-n", "default", "images", "ls", "-q")
	if err != nil || !strings.Contains(imgs, imageName) {
		fmt.Printf("  WARNING: %s %s: image %s not listed (%v): %q\n", t.name, c, imageName, err, imgs)
	}
	// ctr's warnings go to the same output; ctr also keeps the seed's index.
	out, err := d.CtrMain("-n", "default", "content", "ls", "-q")
	blobs := map[string]bool{}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "sha256:") {
			blobs[f] = true
		}
	}
	for _, l := range b.seed.Layers {
		if !blobs[l.Digest.String()] {
			fmt.Printf("  WARNING: %s %s: layer %s not in the content store (%v)\n", t.name, c, l.Digest, err)
		}
	}
	if len(blobs) < layers+2 {
		fmt.Printf("  WARNING: %s %s: %d blobs in the content store, want %d (%v)\n", t.name, c, len(blobs), layers+2, err)
	}
	out, err = d.CtrMain("-n", "default", "snapshots", "ls")
	if got := strings.Count(out, "Committed"); err != nil || got != snaps {
		fmt.Printf("  WARNING: %s %s: %d committed snapshots, want %d (%v)\n", t.name, c, got, snaps, err)
	}
}

// tailBuffer keeps the last max bytes written (ctr's progress output can be long).
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}
