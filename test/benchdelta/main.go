// Command benchdelta measures what an image update costs on a thin link:
// the bytes of a full seed of v2 (what `ctr images export`, skopeo and
// hauler ship), what zarf's differential rule ships (an image whose
// reference was not in the previous package goes whole: a new tag is the
// whole image), and ctr-seed's delta seed made against a v1 node's
// inventory, each against the ideal (the changed layers' bytes).
//
// The image is a realistic three-layer stack: a base OS layer, a runtime
// layer and an app layer. Case "app": v2 changes the app layer only; case
// "runtime+app": v2 changes the runtime layer too. Everything runs for
// real: v1 is imported by ctr-seed into a private containerd, the node's
// inventory is taken there, the full seed is `ctr images export`'s, the
// delta is imported on that node and must land complete and unpacked.
//
//	go run ./test/benchdelta
//
// It prints one row per case and "TARGET MISSED" when a delta exceeds
// 1.01 × the changed layers + 64 KiB; it exits 1 only if it could not
// measure.
package main

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "benchdelta: %v\n", err)
		os.Exit(1)
	}
}

// layer is a deterministic layer of n files of size each, half of every
// file random (incompressible) and half text, so gzip halves it, as it
// roughly does for real binaries and libraries.
func layer(tag string, n, size int) testseed.Layer {
	h := fnv.New64a()
	h.Write([]byte(tag))
	r := rand.New(rand.NewPCG(h.Sum64(), 1))
	l := testseed.Layer{Compression: testseed.Gzip}
	words := []string{"lib", "so", "init", "main", "runtime", "config", "value", "error", "return", "func"}
	for i := 0; i < n; i++ {
		b := make([]byte, 0, size)
		for len(b) < size/2 {
			b = binary.LittleEndian.AppendUint64(b, r.Uint64())
		}
		for len(b) < size {
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, ' ')
		}
		l.Files = append(l.Files, testseed.File{Name: fmt.Sprintf("%s/f%04d", tag, i), Content: b[:size]})
	}
	return l
}

type version struct {
	name   string
	layers []testseed.Layer
}

type benchCase struct {
	name    string
	v1, v2  version
	changed []int // indexes of v2's layers that differ from v1's
}

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (containerd and its snapshotter need it)")
	}
	base := layer("base-os", 400, 96<<10)        // ~37 MiB
	runtime1 := layer("runtime-1", 150, 128<<10) // ~19 MiB
	runtime2 := layer("runtime-2", 150, 128<<10)
	app1 := layer("app-1", 40, 128<<10) // ~5 MiB
	app2 := layer("app-2", 40, 128<<10)
	app3 := layer("app-3", 40, 128<<10)
	cases := []benchCase{
		{"app", version{"registry.local/bench/app:1", []testseed.Layer{base, runtime1, app1}},
			version{"registry.local/bench/app:2", []testseed.Layer{base, runtime1, app2}}, []int{2}},
		{"runtime+app", version{"registry.local/bench/app:1", []testseed.Layer{base, runtime1, app1}},
			version{"registry.local/bench/app:3", []testseed.Layer{base, runtime2, app3}}, []int{1, 2}},
	}

	ctrSeed, bins, err := harness.CtrSeedMain()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ctr-seed-benchdelta-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true})
	if err != nil {
		return err
	}
	defer func() { d.StopMain(); d.Cleanup() }()
	fmt.Printf("containerd %s; bytes of the seed files (tars of gzip layers)\n\n", bins.Version)
	fmt.Printf("%-12s %11s %11s %11s %11s %9s %8s\n", "case", "full (ctr)", "zarf rule", "ctr-seed Δ", "ideal", "Δ/ideal", "full/Δ")
	missed := 0
	for i, c := range cases {
		ns := fmt.Sprintf("node%d", i)
		row, err := measure(d, ctrSeed, dir, ns, c)
		if err != nil {
			return fmt.Errorf("case %s: %w", c.name, err)
		}
		fmt.Printf("%-12s %11s %11s %11s %11s %8.3f× %7.1f×\n", c.name, mib(row.full), mib(row.full), mib(row.delta), mib(row.ideal),
			float64(row.delta)/float64(row.ideal), float64(row.full)/float64(row.delta))
		if float64(row.delta) > 1.01*float64(row.ideal)+64<<10 {
			fmt.Printf("  TARGET MISSED: delta %d bytes > 1.01 × %d + 64 KiB\n", row.delta, row.ideal)
			missed++
		}
	}
	fmt.Println("\nzarf rule: v2's reference is not in the v1 package, so the whole image ships (= full).")
	if missed == 0 {
		fmt.Println("every delta within 1.01 × the changed layers + 64 KiB")
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

type row struct{ full, delta, ideal int64 }

func measure(d *harness.Daemon, ctrSeed, dir, ns string, c benchCase) (row, error) {
	var r row
	plat := platforms.DefaultSpec()
	v1, err := writeSeed(dir, c.v1, plat)
	if err != nil {
		return r, err
	}
	v2, err := writeSeed(dir, c.v2, plat)
	if err != nil {
		return r, err
	}
	for _, i := range c.changed {
		r.ideal += v2.built.Layers[i].Size
	}
	cs := func(args ...string) error {
		out, err := exec.Command(ctrSeed, append([]string{"--address", d.Address, "--namespace", ns}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr-seed %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The node has v1.
	if err := cs("import", "-q", v1.path); err != nil {
		return r, err
	}
	inv := filepath.Join(dir, ns+".json")
	if err := cs("inventory", "--node", ns, "-o", inv); err != nil {
		return r, err
	}
	// Full: what ctr exports for v2 (from a connected machine holding it).
	full := filepath.Join(dir, ns+"-full.tar")
	if out, err := d.CtrMain("-n", ns+"-connected", "images", "import", v2.path); err != nil {
		return r, fmt.Errorf("ctr images import: %v\n%s", err, out)
	}
	if out, err := d.CtrMain("-n", ns+"-connected", "images", "export", "--local", full, c.v2.name); err != nil {
		return r, fmt.Errorf("ctr images export: %v\n%s", err, out)
	}
	// Delta: ctr-seed's, against the node's inventory.
	delta := filepath.Join(dir, ns+"-delta.tar")
	if err := cs("save", "-q", "--offline", "--seed", v2.path, "--have", inv, "-o", delta, c.v2.name); err != nil {
		return r, err
	}
	for p, n := range map[string]*int64{full: &r.full, delta: &r.delta} {
		fi, err := os.Stat(p)
		if err != nil {
			return r, err
		}
		*n = fi.Size()
	}
	// It lands on the node complete and unpacked.
	if err := cs("import", "-q", delta); err != nil {
		return r, fmt.Errorf("the delta does not import on its node: %w", err)
	}
	out, err := d.CtrMain("-n", ns, "snapshots", "ls")
	if err != nil || strings.Count(out, "Committed") < len(c.v2.layers) {
		return r, fmt.Errorf("after the delta: %d committed snapshots, want ≥ %d (%v)", strings.Count(out, "Committed"), len(c.v2.layers), err)
	}
	return r, nil
}

type seedFile struct {
	path  string
	built *testseed.Built
}

func writeSeed(dir string, v version, p ocispec.Platform) (seedFile, error) {
	b, err := testseed.Build(testseed.Image{Name: v.name, Platform: p, Layers: v.layers})
	if err != nil {
		return seedFile{}, err
	}
	var s testseed.Seed
	s.Add(v.name, b.Manifest, b.Blobs)
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(v.name)+".tar")
	f, err := os.Create(path)
	if err != nil {
		return seedFile{}, err
	}
	defer f.Close()
	if err := s.WriteOCITar(f); err != nil {
		return seedFile{}, err
	}
	return seedFile{path, b}, f.Close()
}
