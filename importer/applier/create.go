package applier

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"
	"time"

	"github.com/containerd/continuity/fs"
	"github.com/containerd/continuity/sysx"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix    = ".wh."
	whiteoutOpaqueDir = ".wh..wh..opq"
	paxSchilyXattr    = "SCHILY.xattr."
)

var errInvalidArchive = errors.New("invalid archive")

// create makes one entry in the directory pfd (at pdir) and gives it the
// header's owner, xattrs, mode and times, in archive.Apply's order (chown
// first: it clears setuid bits and file capabilities).
func (t *tree) create(hdr *tar.Header, r io.Reader, pfd int, pdir, base string) error {
	rel := join(pdir, base)
	perm := uint32(hdr.Mode & 07777)
	k := isOther
	switch hdr.Typeflag {
	case tar.TypeDir:
		if t.nodes[rel].kind != isDir {
			if err := unix.Mkdirat(pfd, base, perm); err != nil {
				return &os.PathError{Op: "mkdir", Path: t.abs(rel), Err: err}
			}
		}
		k = isDir
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA: old tars still carry it
		return t.file(hdr, r, pfd, rel, base, perm)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return &os.PathError{Op: "symlink", Path: t.abs(rel), Err: err}
		}
		k = isSymlink
	case tar.TypeLink:
		target, tk, err := t.linkTarget(hdr.Linkname)
		if err != nil {
			return err
		}
		if err := unix.Linkat(t.rootFd, dotIfEmpty(target), pfd, base, 0); err != nil {
			return &os.LinkError{Op: "link", Old: t.abs(target), New: t.abs(rel), Err: err}
		}
		k = tk
	case tar.TypeBlock, tar.TypeChar, tar.TypeFifo:
		if err := mknod(hdr, pfd, base, perm); err != nil {
			return &os.PathError{Op: "mknod", Path: t.abs(rel), Err: err}
		}
	default:
		return fmt.Errorf("unhandled tar header type %d", hdr.Typeflag)
	}
	t.nodes[rel] = node{kind: k, unpacked: true, setgid: k == isDir && perm&unix.S_ISGID != 0}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("failed to Lchown %q for UID %d, GID %d: %w", t.abs(rel), hdr.Uid, hdr.Gid, err)
	}
	if err := t.xattrs(hdr, rel, k); err != nil {
		return err
	}
	if k != isSymlink {
		if err := unix.Fchmodat(pfd, base, perm, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: t.abs(rel), Err: err}
		}
	}
	ts := times(hdr)
	if k == isDir {
		t.dirs = append(t.dirs, dirTime{rel: rel, times: ts})
		return nil
	}
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("failed call to UtimesNanoAt for %s: %w", t.abs(rel), err)
	}
	return nil
}

// file makes a regular file with a handful of syscalls on its own fd:
// openat, write, futimens, close, and fchown/fchmod only when the owner is
// not root or the mode is not what creation already gave.
func (t *tree) file(hdr *tar.Header, r io.Reader, pfd int, rel, base string, perm uint32) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return &os.PathError{Op: "open", Path: t.abs(rel), Err: err}
	}
	t.nodes[rel] = node{kind: isFile, unpacked: true}
	err = t.fileBody(hdr, r, fd, rel, perm)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: t.abs(rel), Err: cerr}
	}
	return err
}

func (t *tree) fileBody(hdr *tar.Header, r io.Reader, fd int, rel string, perm uint32) error {
	if _, err := io.CopyBuffer(fdWriter{fd: fd, name: t.abs(rel)}, r, t.buf); err != nil {
		return err
	}
	// A file made by root is root's, unless its directory is setgid.
	if hdr.Uid != t.euid || hdr.Gid != t.egid || t.setgidParent(rel) {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("failed to Lchown %q for UID %d, GID %d: %w", t.abs(rel), hdr.Uid, hdr.Gid, err)
		}
	}
	if err := t.xattrs(hdr, rel, isFile); err != nil {
		return err
	}
	if perm&^0o777 != 0 || perm&t.umask != 0 {
		if err := unix.Fchmod(fd, perm); err != nil {
			return &os.PathError{Op: "chmod", Path: t.abs(rel), Err: err}
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("failed call to UtimesNanoAt for %s: %w", t.abs(rel), err)
	}
	return nil
}

// setgidParent reports whether rel's directory has the setgid bit, which
// gives new files its group instead of the creator's.
func (t *tree) setgidParent(rel string) bool {
	dir := rel[:max(strings.LastIndexByte(rel, '/'), 0)]
	if dir == "" {
		return t.rootSetgid
	}
	return t.nodes[dir].setgid
}

// whiteout handles ".wh." entries: overlayfs form (a 0/0 character device,
// or the opaque xattr) on overlay, removal otherwise, as archive.Apply.
func (t *tree) whiteout(hdr *tar.Header, pdir, base string) error {
	if base == whiteoutOpaqueDir {
		if t.overlay {
			if err := unix.Lsetxattr(t.abs(pdir), "trusted.overlay.opaque", []byte{'y'}, 0); err != nil {
				return fmt.Errorf("failed to convert whiteout file %q: %w", hdr.Name, err)
			}
			return nil
		}
		if t.opaque[pdir] {
			return nil
		}
		t.opaque[pdir] = true
		for _, p := range t.notUnpackedUnder(pdir) {
			if _, ok := t.nodes[p]; ok {
				if err := t.removeAll(p); err != nil {
					return fmt.Errorf("failed to convert whiteout file %q: %w", hdr.Name, err)
				}
			}
		}
		return nil
	}
	orig := base[len(whiteoutPrefix):]
	if orig == "" || orig == "." || orig == ".." {
		return fmt.Errorf("invalid whiteout name: %v: %w", base, errInvalidArchive)
	}
	rel := join(pdir, orig)
	if !t.overlay {
		if err := t.removeAll(rel); err != nil {
			return fmt.Errorf("failed to convert whiteout file %q: %w", hdr.Name, err)
		}
		return nil
	}
	pfd, err := t.dirFd(pdir)
	if err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, orig, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("failed to convert whiteout file %q: %w", hdr.Name, &os.PathError{Op: "mknod", Path: t.abs(rel), Err: err})
	}
	t.nodes[rel] = node{kind: isOther}
	if err := unix.Fchownat(pfd, orig, hdr.Uid, hdr.Gid, 0); err != nil {
		return fmt.Errorf("failed to convert whiteout file %q: %w", hdr.Name, err)
	}
	return nil
}

// mkparents makes the missing directories of dir from index from on, with
// mode 0755, or the attributes of the same directory in a lower layer.
func (t *tree) mkparents(dir string, from int) error {
	for i := from; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		if err := unix.Mkdirat(t.rootFd, p, 0o755); err != nil {
			return &os.PathError{Op: "mkdir", Path: t.abs(p), Err: err}
		}
		if err := unix.Fchmodat(t.rootFd, p, 0o755, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: t.abs(p), Err: err}
		}
		t.nodes[p] = node{kind: isDir}
		if err := t.copyUp(p); err != nil {
			return err
		}
	}
	return nil
}

// copyUp gives an implicit directory the owner, mode, times and xattrs of
// the first lower layer that has it.
func (t *tree) copyUp(rel string) error {
	for _, lower := range t.parents {
		lp, err := fs.RootPath(lower, "/"+rel)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(lp, &st); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return &os.PathError{Op: "lstat", Path: lp, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil // replaced: no attributes to copy
		}
		p := t.abs(rel)
		t.nodes[rel] = node{kind: isDir, setgid: st.Mode&unix.S_ISGID != 0}
		if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("failed to chown %s: %w", p, err)
		}
		if err := unix.Fchmodat(t.rootFd, rel, st.Mode&07777, 0); err != nil {
			return fmt.Errorf("failed to chmod %s: %w", p, err)
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(t.rootFd, rel, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("failed to utime %s: %w", p, err)
		}
		return copyUpXattrs(p, lp)
	}
	log.G(t.ctx).Debugf("parent directory %q not found: default permissions(0755) used", t.abs(rel))
	return nil
}

func copyUpXattrs(dst, src string) error {
	keys, err := sysx.LListxattr(src)
	if err != nil {
		if err == unix.ENOTSUP || err == sysx.ENODATA {
			return nil
		}
		return fmt.Errorf("failed to list xattrs on %s: %w", src, err)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "trusted.") {
			continue
		}
		v, err := sysx.LGetxattr(src, k)
		if err == unix.ENOTSUP || err == sysx.ENODATA {
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to get xattr %q on %s: %w", k, src, err)
		}
		if err := unix.Lsetxattr(dst, k, v, unix.XATTR_CREATE); err != nil && err != unix.ENOTSUP && err != unix.ENODATA && err != unix.EEXIST {
			return fmt.Errorf("failed to set xattr %q on %s: %w", k, dst, err)
		}
	}
	return nil
}

// linkTarget resolves a hardlink's target as archive.Apply does: its
// directory within the root, symlinks followed.
func (t *tree) linkTarget(linkname string) (string, kind, error) {
	name := path.Clean("/" + linkname)[1:]
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if _, err := t.walk(dir); err != nil {
		if !errors.Is(err, errSymlink) {
			return "", absent, err
		}
		p, err := fs.RootPath(t.root, dir)
		if err != nil {
			return "", absent, err
		}
		dir = strings.TrimPrefix(strings.TrimPrefix(p, t.root), "/")
	}
	rel := join(dir, base)
	return rel, t.nodes[rel].kind, nil
}

// xattrs sets the header's SCHILY.xattr records; like archive.Apply it
// skips trusted.* and what the file system or the file type cannot hold.
func (t *tree) xattrs(hdr *tar.Header, rel string, k kind) error {
	for key, value := range hdr.PAXRecords {
		if !strings.HasPrefix(key, paxSchilyXattr) {
			continue
		}
		key = key[len(paxSchilyXattr):]
		var err error = unix.ENOTSUP
		if !strings.HasPrefix(key, "trusted.") {
			err = unix.Lsetxattr(t.abs(rel), key, []byte(value), 0)
		}
		switch {
		case err == nil:
		case err == unix.EPERM && strings.HasPrefix(key, "user.") && k != isFile && k != isDir,
			err == unix.ENOTSUP:
			log.G(t.ctx).WithError(err).Warnf("ignored xattr %s in archive", key)
		default:
			return fmt.Errorf("failed to setxattr %q for key %q: %w", t.abs(rel), key, err)
		}
	}
	return nil
}

func mknod(hdr *tar.Header, pfd int, base string, perm uint32) error {
	mode := perm
	switch hdr.Typeflag {
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return fmt.Errorf("device number %d:%d for %q out of range: %w", hdr.Devmajor, hdr.Devminor, hdr.Name, errInvalidArchive)
	}
	return unix.Mknodat(pfd, base, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
}

var maxTime = time.Unix(0, math.MaxInt64)

// times are archive.Apply's: atime is the later of atime and mtime, and
// times outside what a timespec holds become the epoch.
func times(hdr *tar.Header) [2]unix.Timespec {
	bound := func(t time.Time) time.Time {
		if t.Before(time.Unix(0, 0)) || t.After(maxTime) {
			return time.Unix(0, 0)
		}
		return t
	}
	at := hdr.AccessTime
	if at.Before(hdr.ModTime) {
		at = hdr.ModTime
	}
	return [2]unix.Timespec{
		unix.NsecToTimespec(bound(at).UnixNano()),
		unix.NsecToTimespec(bound(hdr.ModTime).UnixNano()),
	}
}

type fdWriter struct {
	fd   int
	name string
}

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(w.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "write", Path: w.name, Err: err}
		}
		n += m
	}
	return n, nil
}
