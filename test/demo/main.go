// Command demo runs ctr-seed's main job end to end on a private default:
// it builds containerd (at the version go.mod pins) and ctr-seed, starts a
// private containerd in a temp root, writes small seeds in every format,
// lists and verifies them, imports them, and shows the images and their
// snapshots — then stops the daemon and removes everything.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ctr-seed/ctr-seed/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	step("building ctr-seed and mkseed, and containerd/ctr at the pinned version (cached)")
	ctrSeed, err := harness.BuildCommandMain("./cmd/ctr-seed")
	if err != nil {
		return err
	}
	mkseed, err := harness.BuildCommandMain("./test/mkseed")
	if err != nil {
		return err
	}
	d, err := harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true})
	if d != nil {
		defer d.Cleanup()
	}
	if err != nil {
		return err
	}
	fmt.Printf("private containerd %s on %s (root %s)\n", d.Bins.Version, d.Address, d.Root)

	seeds := filepath.Join(d.Dir, "seeds")
	if err := os.MkdirAll(seeds, 0o755); err != nil {
		return err
	}
	all := []string{"demo-oci.tar", "demo-oci.tar.zst", "demo-docker.tar", "demo-docker.tar.gz", "oci-dir"}
	paths := make([]string, len(all))
	for i, s := range all {
		paths[i] = filepath.Join(seeds, s)
	}
	steps := [][]string{
		{mkseed, "-o", seeds},
		append([]string{ctrSeed, "ls"}, paths...),
		append([]string{ctrSeed, "verify"}, paths...),
		append([]string{ctrSeed, "-a", d.Address, "-n", "k8s.io", "import", "--pin"}, paths...),
		{d.Bins.Ctr, "-a", d.Address, "-n", "k8s.io", "images", "ls"},
		{d.Bins.Ctr, "-a", d.Address, "-n", "k8s.io", "snapshots", "ls"},
		{"echo", "--- importing again costs almost nothing:"},
		append([]string{ctrSeed, "-a", d.Address, "-n", "k8s.io", "import", "--pin"}, paths[0]),
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return err
		}
	}
	step("a corrupt seed is refused, and leaves nothing behind (exit 1 expected)")
	if err := sh(mkseed, "-o", seeds, "-corrupt"); err != nil {
		return err
	}
	if err := sh(ctrSeed, "verify", filepath.Join(seeds, "corrupt.tar")); err == nil {
		return fmt.Errorf("verify accepted a corrupt seed")
	}
	step("done: stopping containerd and removing " + d.Dir)
	return nil
}

func step(s string) { fmt.Printf("\n=== %s\n", s) }

func sh(args ...string) error {
	fmt.Printf("\n$ %s\n", filepath.Base(args[0])+" "+join(args[1:]))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func join(a []string) string {
	out := ""
	for i, s := range a {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
