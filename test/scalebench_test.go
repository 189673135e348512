package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkScale times ls and import --no-unpack of seeds of 1k, 5k and
// 20k one-layer images ($CTR_SEED_SCALE_SIZES, e.g. "500,2000"), beside
// ctr images import --no-unpack of the same seed, each import into a
// fresh private containerd. It prints seconds and µs an image: linear
// growth is a flat µs/image down a column. `make bench` runs it once;
// the seeds are cached in $CTR_SEED_BENCH_DIR. $CTR_SEED_SCALE_BIN times
// another ctr-seed binary (an older build, to compare).
func BenchmarkScale(b *testing.B) {
	ctrSeed := ctrSeed
	if v := os.Getenv("CTR_SEED_SCALE_BIN"); v != "" {
		ctrSeed = v
	}
	sizes := []int{1000, 5000, 20000}
	if v := os.Getenv("CTR_SEED_SCALE_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("CTR_SEED_SCALE_SIZES=%q: %q is no image count", v, f)
			}
			sizes = append(sizes, n)
		}
	}
	dir := os.Getenv("CTR_SEED_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ctr-seed-bench")
	}
	for b.Loop() {
		fmt.Printf("%-7s %-30s %9s %9s\n", "images", "command", "seconds", "µs/image")
		for _, n := range sizes {
			seed := scaleSeed(b, dir, n)
			row := func(what string, took time.Duration) {
				fmt.Printf("%-7d %-30s %9.2f %9.0f\n", n, what, took.Seconds(), float64(took.Microseconds())/float64(n))
			}
			row("ctr-seed ls", scaleRun(b, n, []string{ctrSeed, "ls", seed}))
			for _, tool := range []struct {
				name string
				argv func(addr string) []string
			}{
				{"ctr-seed import --no-unpack", func(addr string) []string {
					return []string{ctrSeed, "--address", addr, "import", "-q", "--no-unpack", seed}
				}},
				{"ctr images import --no-unpack", func(addr string) []string {
					return []string{daemon.Bins.Ctr, "--address", addr, "images", "import", "--no-unpack", seed}
				}},
			} {
				d := harness.StartDaemon(b, harness.DaemonOptions{DisableCRI: true})
				row(tool.name, scaleRun(b, n, tool.argv(d.Address)))
				if err := d.Cleanup(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// scaleRun runs argv (n images) to its end, and fails unless it exits 0.
func scaleRun(b *testing.B, n int, argv []string) time.Duration {
	// A hang guard, not a goal: an import takes 60-90 ms an image on a
	// busy two-core machine, ctr's too.
	r, err := harness.Run(b.Context(), harness.Cmd{Argv: argv, Timeout: time.Minute + time.Duration(n)*time.Second/2})
	if err != nil {
		b.Fatal(err)
	}
	if r.Code != 0 {
		b.Fatalf("%s: %s", strings.Join(argv, " "), r)
	}
	return r.Took
}

// scaleSeed is the cached seed of n one-layer images (testseed.Many).
func scaleSeed(b *testing.B, dir string, n int) string {
	p := filepath.Join(dir, fmt.Sprintf("scale-%d.tar", n))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	s, err := testseed.Many(n, "registry.local/scale/img", ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.CreateTemp(dir, ".scale-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	err = s.WriteOCITar(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		b.Fatal(err)
	}
	return p
}
