package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The floor is what the disk and the decompressor allow, whatever the
// importer: copy the seed's layer blobs out of it, decompress and untar
// every layer at once (one pipeline per layer), then sync: the bytes any
// fresh import must write, with no verification and no snapshotter. It
// runs on the same file system as the daemons, settled the same way.
const toolFloor = "floor"

// decompressor is what the floor decompresses gzip with: unpigz when pigz
// is on PATH (containerd uses it then), else gzip.
func decompressor() string {
	if !pigzUsed() {
		return "gzip -dc"
	}
	if p, err := exec.LookPath("unpigz"); err == nil {
		return p + " -dc"
	}
	p, _ := exec.LookPath("pigz")
	return p + " -dc"
}

// pigzUsed: pigz is on PATH and not disabled with CONTAINERD_DISABLE_PIGZ
// (which containerd, and so ctr, honour: make bench runs the small seed
// both ways).
func pigzUsed() bool {
	if v, _ := strconv.ParseBool(os.Getenv("CONTAINERD_DISABLE_PIGZ")); v {
		return false
	}
	_, err := exec.LookPath("pigz")
	return err == nil
}

// floor times one floor run in a fresh directory of $TMPDIR (the bench's
// file system) and removes it afterwards, untimed.
func (b *bench) floor(ctx context.Context) (sample, error) {
	dir, err := os.MkdirTemp("", "ctr-seed-floor-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	var blobs []string
	var script strings.Builder
	for _, l := range b.seed.Layers {
		blobs = append(blobs, "blobs/sha256/"+l.Digest.Encoded())
	}
	fmt.Fprintf(&script, "set -e\ncd %q\ntar -xf %q %s\n", dir, b.seed.Path, strings.Join(blobs, " "))
	for i, bl := range blobs {
		fmt.Fprintf(&script, "mkdir r%d; (%s %s | tar -x -C r%d) &\n", i, decompressor(), bl, i)
	}
	script.WriteString("wait\nsync\n")
	if err := b.settle("/bin/sh"); err != nil {
		return sample{}, err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script.String())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s := sample{wall: time.Since(start)}
	if err != nil {
		return s, fmt.Errorf("floor: %v\n%s", err, out)
	}
	fmt.Printf("  %-9s %-10s %8.2fs  (%s, %d layers at once, sync)\n", toolFloor, caseFresh, s.wall.Seconds(), filepath.Base(strings.Fields(decompressor())[0]), len(blobs))
	return s, nil
}
