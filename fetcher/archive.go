package fetcher

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"
)

// MaxJSONSize caps every JSON document (index.json, manifest.json,
// manifests, configs) read from a seed before it is parsed.
const MaxJSONSize = 32 << 20

// maxLinkHops bounds link chains inside an archive (cycles, long chains).
const maxLinkHops = 16

// The index of a tar seed is held in memory, so it is capped: archive/tar
// takes PAX names of up to 1 MiB, and a few hundred KB of gzip can carry
// millions of entries. A real seed has a few files per blob: thousands of
// entries with names under a hundred bytes.
const (
	// MaxEntries caps the entries of a tar seed (every kind).
	MaxEntries = 1 << 18
	// MaxNameLen caps one entry's name (PATH_MAX).
	MaxNameLen = 4096
	// MaxNameBytes caps the names (and link targets) the index keeps.
	MaxNameBytes = 32 << 20
)

// archive is one seed format's view of its files: named regular files,
// with links already confined to the archive.
type archive interface {
	// lookup returns the regular file at the clean in-archive path name.
	lookup(name string) (file, error)
	// list returns the in-archive paths of the regular files below dir.
	list(dir string) ([]string, error)
	Close() error
}

// file is a regular file inside a seed.
type file struct {
	name string
	size int64
	open func() (io.ReaderAt, io.Closer, error)
}

// cleanName turns a tar entry name into a clean relative path; ok is false
// for names that would leave the archive (absolute or containing "..").
func cleanName(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", false
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", false
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", false
	}
	return c, true
}

type entryKind int

const (
	kindReg entryKind = iota
	kindSymlink
	kindHardlink
	kindOther
)

// entry is one indexed tar entry.
type entry struct {
	kind entryKind
	off  int64
	size int64
	link string // clean in-archive target for links
}

// entries is the in-memory index of a tar: name → entry.
type entries struct {
	byName   map[string]entry
	rejected map[string]string // names refused at index time, with the reason
}

func newEntries() *entries {
	return &entries{byName: map[string]entry{}, rejected: map[string]string{}}
}

// resolve follows links inside the archive and returns the regular entry
// that name refers to.
func (es *entries) resolve(name string) (entry, error) {
	cur := name
	for range maxLinkHops {
		e, ok := es.byName[cur]
		if !ok {
			if why, bad := es.rejected[cur]; bad {
				return entry{}, fmt.Errorf("entry %q: %s: %w", cur, why, errdefs.ErrInvalidArgument)
			}
			return entry{}, fmt.Errorf("entry %q: %w", cur, errdefs.ErrNotFound)
		}
		switch e.kind {
		case kindReg:
			return e, nil
		case kindSymlink, kindHardlink:
			if e.link == "" {
				return entry{}, fmt.Errorf("entry %q: link points outside the archive: %w", cur, errdefs.ErrInvalidArgument)
			}
			cur = e.link
		default:
			return entry{}, fmt.Errorf("entry %q: not a regular file: %w", cur, errdefs.ErrInvalidArgument)
		}
	}
	return entry{}, fmt.Errorf("entry %q: too many links: %w", name, errdefs.ErrInvalidArgument)
}

func (es *entries) list(dir string) []string {
	prefix := dir + "/"
	var out []string
	for name, e := range es.byName {
		if strings.HasPrefix(name, prefix) && e.kind != kindOther {
			out = append(out, name)
		}
	}
	return out
}

// linkTarget computes where a link entry points, confined to the archive;
// "" means it points outside (absolute, or up past the root).
func linkTarget(name, linkname string, hard bool) string {
	if linkname == "" || strings.HasPrefix(linkname, "/") {
		return ""
	}
	target := linkname
	if !hard {
		target = path.Join(path.Dir(name), linkname)
	}
	target = path.Clean(target)
	if target == ".." || strings.HasPrefix(target, "../") || target == "." {
		return ""
	}
	return target
}
