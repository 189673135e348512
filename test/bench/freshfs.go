package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// freshFS makes a new ext4 file system in a sparse file under dir, mounts
// it (loop) and returns where. The daemons live there for the whole bench
// and are deleted only at its end, so no run makes files on a file system
// that has just freed many inodes — which on ext4 costs up to 50× per file
// for minutes (see settle), and would land on whichever run came next.
func freshFS(dir string, size int64) (mnt string, cleanup func(), err error) {
	img := filepath.Join(dir, "fs.img")
	mnt = filepath.Join(dir, "fs")
	_ = exec.Command("umount", mnt).Run() // a previous bench killed midway
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.Truncate(img, 0); err != nil && !os.IsNotExist(err) {
		return "", nil, err
	}
	f, err := os.Create(img)
	if err != nil {
		return "", nil, err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return "", nil, err
	}
	// Inode tables and journal written now, not by ext4lazyinit during
	// the runs.
	for _, argv := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			os.Remove(img)
			return "", nil, fmt.Errorf("%v: %w\n%s", argv, err, out)
		}
	}
	return mnt, func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: umount %s: %v\n%s", mnt, err, out)
			return
		}
		os.Remove(img)
	}, nil
}
