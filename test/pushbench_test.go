package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
)

// BenchmarkPush times pushing the bench seed (test/bench builds it: make
// bench runs that first) into an empty registry and again into one that
// has it, ctr-seed push beside skopeo copy oci-archive:… docker://… of the
// same seed, each into a registry of its own; it reports seconds and blob
// uploads. `make bench` runs it once.
func BenchmarkPush(b *testing.B) {
	dir := os.Getenv("CTR_SEED_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ctr-seed-bench")
	}
	seed := filepath.Join(dir, "bench-v1-small.tar")
	if _, err := os.Stat(seed); err != nil {
		b.Fatalf("the bench seed (run go run ./test/bench first): %v", err)
	}
	fi, _ := os.Stat(seed)
	for b.Loop() {
		type tool struct {
			name string
			argv func(host string) []string
		}
		tools := []tool{
			{"ctr-seed push", func(host string) []string {
				return []string{ctrSeed, "push", "-q", "--plain-http", "--to", host + "/site", seed}
			}},
			{"skopeo copy", func(host string) []string {
				return []string{"skopeo", "copy", "-q", "--dest-tls-verify=false", "oci-archive:" + seed, "docker://" + host + "/site/bench:1"}
			}},
		}
		fmt.Printf("push of %s (%.0f MB), each tool into a registry of its own on loopback\n", seed, float64(fi.Size())/1e6)
		times := map[string][2]time.Duration{}
		for _, tl := range tools {
			reg := testregistry.Start(b, testregistry.Options{})
			var ts [2]time.Duration
			for i := range 2 {
				reg.Reset()
				argv := tl.argv(reg.Host)
				start := time.Now()
				if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
					b.Fatalf("%s: %v\n%s", tl.name, err, out)
				}
				ts[i] = time.Since(start)
				fmt.Printf("  %-14s %-6s %6.2fs  %3d blob uploads\n", tl.name, []string{"first", "again"}[i], ts[i].Seconds(), uploads(reg))
			}
			times[tl.name] = ts
		}
		c, s := times["ctr-seed push"], times["skopeo copy"]
		fmt.Printf("ctr-seed/skopeo: first %.2f×, again %.3f× (goals: ≤ 1×, ≤ 0.05×)\n", c[0].Seconds()/s[0].Seconds(), c[1].Seconds()/s[1].Seconds())
	}
}
