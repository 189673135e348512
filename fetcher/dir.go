package fetcher

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
)

// dirArchive is an OCI layout directory on disk. os.Root confines every
// open to the directory: symlinks are followed only while they stay inside,
// and ".." cannot climb out.
type dirArchive struct {
	root *os.Root
}

func openDir(dir string) (*dirArchive, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening seed directory: %w", err)
	}
	return &dirArchive{root: root}, nil
}

func (d *dirArchive) lookup(name string) (file, error) {
	fi, err := d.root.Stat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return file{}, fmt.Errorf("entry %q: %w", name, errdefs.ErrNotFound)
		}
		return file{}, fmt.Errorf("entry %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	if !fi.Mode().IsRegular() {
		return file{}, fmt.Errorf("entry %q: not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	root := d.root
	return file{name: name, size: fi.Size(), open: func() (io.ReaderAt, io.Closer, error) {
		// O_NONBLOCK: a FIFO swapped in after Stat must not hang the open.
		f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %q: %w", name, err)
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, nil, fmt.Errorf("entry %q: not a regular file: %w", name, errdefs.ErrInvalidArgument)
		}
		return f, f, nil
	}}, nil
}

func (d *dirArchive) list(dir string) ([]string, error) {
	var out []string
	err := fs.WalkDir(d.root.FS(), dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			return err
		}
		if de.Type().IsRegular() || de.Type()&fs.ModeSymlink != 0 {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func (d *dirArchive) Close() error { return d.root.Close() }
