package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// settle puts every timed run on the same footing. It syncs, so the
// previous run's dirty pages are not this run's cost, and with -drop-caches
// it drops the kernel's clean caches, then reads the seed and the tool's
// binary back in so both tools start warm.
//
// Dropping matters on ext4 without a journal (this machine's root fs): for
// 60 s after an inode is freed (360 s while its inode table block is dirty)
// the inode allocator will not reuse it, and checks every such candidate
// whose table block is still cached, one by one. Creating the seed's 11k
// files right after the previous daemon's cleanup deleted as many then
// costs 4–10× more (plain tar: 1 s against 4–10 s), an artefact that would
// land on whichever tool runs next. Dropping the caches makes the check
// find nothing cached, which is what a node that has not just deleted a
// whole image sees.
func (b *bench) settle(bin string) error {
	syscall.Sync()
	if b.drop {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			fmt.Printf("WARNING: cannot drop caches (%v): unpack times may include ext4's recently-deleted inode scan\n", err)
			b.drop = false
		}
	}
	for _, p := range []string{b.seed.Path, bin} {
		if err := warm(p); err != nil {
			return err
		}
	}
	return nil
}

// warm reads a file once so that the timed run finds it in the page cache.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
