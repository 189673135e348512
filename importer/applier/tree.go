package applier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

// The fast path applies a layer to a directory that was empty when it
// began (a fresh overlayfs upper dir). Everything in it is then something
// this apply made, so a map of what was made replaces containerd's
// per-entry Lstat of every parent, and files are made relative to an open
// parent directory (openat, fchown, futimens) instead of by path. The
// semantics are containerd's archive.Apply, entry for entry (see
// tree_test.go, which compares the two on the same layers).

type kind uint8

const (
	absent kind = iota
	isDir
	isFile
	isSymlink
	isOther // device, fifo, whiteout
)

type node struct {
	kind     kind
	unpacked bool // an entry of the layer, not a parent made implicitly
	setgid   bool // a directory whose new files take its group
}

type dirTime struct {
	rel   string
	times [2]unix.Timespec
}

type tree struct {
	ctx     context.Context
	root    string // absolute and clean
	rootFd  int
	parents []string // overlay lower dirs, for implicit parents' attributes
	overlay bool     // whiteouts become overlayfs whiteouts (else removals)
	umask   uint32
	euid    int
	egid    int

	rootSetgid bool

	// written, when set, is told the sizes of the entries so far: a
	// sparse file's data is its declared size, not what the layer holds.
	written func(total int64) error

	nodes  map[string]node // by path relative to root, symlinks resolved
	opaque map[string]bool
	dirs   []dirTime
	fds    map[string]int // open parent directories
	buf    []byte
}

const maxOpenDirs = 64

func newTree(ctx context.Context, root string, parents []string, overlay bool, umask uint32) (*tree, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: root, Err: err}
	}
	return &tree{
		ctx: ctx, root: root, rootFd: fd, parents: parents, overlay: overlay, umask: umask,
		euid: os.Geteuid(), egid: os.Getegid(), rootSetgid: st.Mode&unix.S_ISGID != 0,
		nodes: map[string]node{}, opaque: map[string]bool{}, fds: map[string]int{},
		buf: make([]byte, 128<<10),
	}, nil
}

func (t *tree) close() {
	for _, fd := range t.fds {
		unix.Close(fd)
	}
	t.fds = nil
	unix.Close(t.rootFd)
}

// apply reads the layer tar r into the tree and returns the bytes of file
// content it held, as archive.Apply does.
func (t *tree) apply(r io.Reader) (int64, error) {
	var size int64
	tr := tar.NewReader(r)
	for {
		if err := t.ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		size += hdr.Size
		if t.written != nil {
			if err := t.written(size); err != nil {
				return 0, err
			}
		}
		if err := t.entry(hdr, tr); err != nil {
			return 0, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	// Directory times last: making entries inside a directory moves its mtime.
	for _, d := range t.dirs {
		if t.nodes[d.rel].kind != isDir {
			continue // replaced later in the layer
		}
		if err := unix.UtimesNanoAt(t.rootFd, dotIfEmpty(d.rel), d.times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, &os.PathError{Op: "utimensat", Path: d.rel, Err: err}
		}
	}
	return size, nil
}

func (t *tree) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	// Rooted and clean: "../x" and "/x" are "x", as archive.Apply's
	// RootPath scoping makes them.
	name := path.Clean("/" + hdr.Name)[1:]
	if name == "" {
		return nil // the root itself
	}
	dir, base := path.Split(name)
	pdir, err := t.parent(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return t.whiteout(hdr, pdir, base)
	}
	rel := join(pdir, base)
	if n, ok := t.nodes[rel]; ok && (n.kind != isDir || hdr.Typeflag != tar.TypeDir) {
		if err := t.removeAll(rel); err != nil {
			return err
		}
	}
	pfd, err := t.dirFd(pdir)
	if err != nil {
		return err
	}
	return t.create(hdr, r, pfd, pdir, base)
}

// parent resolves dir (clean, relative) the way archive.Apply does —
// symlinks made earlier in the layer are followed, scoped to the root —
// makes what is missing of it, and returns its resolved path.
func (t *tree) parent(dir string) (string, error) {
	if dir == "" || t.nodes[dir].kind == isDir {
		return dir, nil
	}
	for hops := 0; ; hops++ {
		missing, err := t.walk(dir)
		if err == nil {
			if missing >= 0 {
				if err := t.mkparents(dir, missing); err != nil {
					return "", err
				}
			}
			return dir, nil
		}
		if !errors.Is(err, errSymlink) || hops > 0 {
			return "", err
		}
		// A symlink on the way: let continuity resolve it within the root,
		// then walk the result, which has none left.
		p, err := fs.RootPath(t.root, dir)
		if err != nil {
			return "", fmt.Errorf("failed to get root path: %w", err)
		}
		if dir = strings.TrimPrefix(strings.TrimPrefix(p, t.root), "/"); dir == "" {
			return "", nil
		}
	}
}

var errSymlink = errors.New("symlink in path")

// walk checks the components of dir; missing is the index in dir where
// the first missing one starts, or -1 when all exist.
func (t *tree) walk(dir string) (missing int, err error) {
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		switch t.nodes[dir[:i]].kind {
		case isDir:
		case absent:
			return strings.LastIndexByte(dir[:i], '/') + 1, nil
		case isSymlink:
			return 0, errSymlink
		default:
			return 0, &os.PathError{Op: "mkparent", Path: t.abs(dir[:i]), Err: syscall.ENOTDIR}
		}
	}
	return -1, nil
}

// removeAll removes rel and forgets it and all under it.
func (t *tree) removeAll(rel string) error {
	if err := os.RemoveAll(t.abs(rel)); err != nil {
		return err
	}
	if t.nodes[rel].kind == isDir {
		prefix := rel + "/"
		for p := range t.nodes {
			if strings.HasPrefix(p, prefix) {
				delete(t.nodes, p)
			}
		}
		for p, fd := range t.fds {
			if p == rel || strings.HasPrefix(p, prefix) {
				unix.Close(fd)
				delete(t.fds, p)
			}
		}
	}
	delete(t.nodes, rel)
	return nil
}

// dirFd opens a directory of the tree. The kernel refuses symlinks on the
// way (RESOLVE_NO_SYMLINKS), so even a wrong map cannot lead outside.
func (t *tree) dirFd(rel string) (int, error) {
	if rel == "" {
		return t.rootFd, nil
	}
	if fd, ok := t.fds[rel]; ok {
		return fd, nil
	}
	if len(t.fds) >= maxOpenDirs {
		for p, fd := range t.fds {
			unix.Close(fd)
			delete(t.fds, p)
		}
	}
	fd, err := unix.Openat2(t.rootFd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == unix.ENOSYS {
		fd, err = unix.Openat(t.rootFd, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: t.abs(rel), Err: err}
	}
	t.fds[rel] = fd
	return fd, nil
}

// notUnpackedUnder lists what lies under dir that the layer did not
// itself hold, shallowest first.
func (t *tree) notUnpackedUnder(dir string) []string {
	prefix := dir + "/"
	var out []string
	for p, n := range t.nodes {
		if (dir == "" || strings.HasPrefix(p, prefix)) && p != "" && !n.unpacked {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

func (t *tree) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return t.root + "/" + rel
}

func join(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

func dotIfEmpty(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
