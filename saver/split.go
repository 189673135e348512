package saver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/procstat"
	digest "github.com/opencontainers/go-digest"
)

// ParseSize reads a size like "4G", "700M", "512K" or "1048576" (binary
// units).
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, or with K, M, G or T: %w", s, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}

// Output is where a save writes: OUT, or, split, OUT.001, OUT.002, … of at
// most partSize bytes each (a FAT32 stick takes files under 4 GiB). Each
// file is written under a hidden name beside OUT and renamed only when
// the whole seed is written: a failed save leaves nothing. A killed one
// (SIGKILL, a power cut) leaves its hidden files; they name their writer
// (see partialPrefix), and the next save into the same directory removes
// those whose writer is gone (RemoveStale).
type Output struct {
	path     string
	partSize int64 // 0: one file
	done     []*os.File
	cur      *os.File
	n        int64
}

// NewOutput prepares an output at path.
func NewOutput(path string, partSize int64) *Output {
	return &Output{path: path, partSize: partSize}
}

func (o *Output) next() error {
	if o.cur != nil {
		o.done = append(o.done, o.cur)
	}
	f, err := os.CreateTemp(filepath.Dir(o.path), partialPrefix(filepath.Base(o.path))+"*")
	if err != nil {
		return err
	}
	o.cur, o.n = f, 0
	return nil
}

func (o *Output) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if o.cur == nil || (o.partSize > 0 && o.n == o.partSize) {
			if err := o.next(); err != nil {
				return written, err
			}
		}
		k := len(p)
		if o.partSize > 0 {
			k = int(min(int64(k), o.partSize-o.n))
		}
		m, err := o.cur.Write(p[:k])
		written += m
		o.n += int64(m)
		if err != nil {
			return written, err
		}
		p = p[m:]
	}
	return written, nil
}

// Commit syncs and renames the files into place and returns their names.
func (o *Output) Commit() ([]string, error) {
	if o.cur == nil {
		if err := o.next(); err != nil { // an empty seed is still a file
			return nil, err
		}
	}
	files := append(o.done, o.cur)
	var names []string
	for i, f := range files {
		name := o.path
		if o.partSize > 0 {
			name = fmt.Sprintf("%s.%03d", o.path, i+1)
		}
		if err := f.Chmod(0o644); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	for i, f := range files {
		if err := f.Close(); err != nil {
			return nil, err
		}
		if err := os.Rename(f.Name(), names[i]); err != nil {
			return nil, err
		}
	}
	o.done, o.cur = nil, nil
	return names, nil
}

// Abort removes what was written.
func (o *Output) Abort() {
	for _, f := range append(o.done, o.cur) {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	o.done, o.cur = nil, nil
}

// partialPrefix is how the hidden files of a save of base begin:
// ".BASE.partial-PIDNS.PID.START.HOST-", the writer as procstat.Owner
// identifies it, in characters a FAT32 file name may hold (the host as
// the start of its hash); os.CreateTemp adds a random number.
func partialPrefix(base string) string {
	return "." + base + ".partial-" + ownerToken(procstat.Owner()) + "-"
}

func ownerToken(owner string) string {
	parts := strings.Split(owner, ":")
	if len(parts) != 4 {
		return "unknown"
	}
	return strings.Join([]string{parts[1], parts[2], parts[3], hostHash(parts[0])}, ".")
}

func hostHash(host string) string {
	return digest.FromString(host).Encoded()[:12]
}

// staleOwner is the writer a partial file's name records, and whether the
// name is one; the owner is the form procstat.OwnerAlive reads, on this
// host when the name's host hash is this host's, else on none.
func staleOwner(name string) (string, bool) {
	i := strings.LastIndex(name, ".partial-")
	if !strings.HasPrefix(name, ".") || i < 1 {
		return "", false
	}
	token, random, ok := strings.Cut(name[i+len(".partial-"):], "-")
	if _, err := strconv.ParseUint(random, 10, 64); !ok || err != nil {
		return "", false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		return "", false
	}
	host, _ := os.Hostname()
	if parts[3] != hostHash(host) {
		host = "" // another host's: OwnerAlive cannot judge it
	}
	return strings.Join([]string{host, parts[0], parts[1], parts[2]}, ":"), true
}

// RemoveStale removes the hidden files that saves into OUT's directory
// (of any OUT there) left when they were killed: those whose name records
// a writer on this host, in this PID namespace, that is gone. A live
// save's files, another host's or another PID namespace's (a save in a
// container), and those of older ctr-seeds (their names record no
// writer) are left. It returns the names removed.
func (o *Output) RemoveStale() []string {
	dir := filepath.Dir(o.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // the save itself says what is wrong with dir
	}
	var removed []string
	for _, e := range entries {
		owner, ok := staleOwner(e.Name())
		if !ok || !e.Type().IsRegular() || procstat.OwnerAlive(owner) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}
