package fetcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// OpenStream indexes a seed read from r (stdin: `ctr-seed import -`), named
// name in messages. A stream cannot be read at offsets, so it is read once:
// decompressed if it is compressed, indexed, and copied into an unlinked
// spool file (the spool dir and cap apply) whose sections serve the blobs,
// as for a compressed seed file.
func OpenStream(ctx context.Context, name string, r io.Reader, opts ...Opt) (*Seed, error) {
	cfg := newOpenConfig(opts)
	s := &Seed{path: name, mem: map[digest.Digest][]byte{}, files: map[digest.Digest]string{}}
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, s.errorf("reading: %w", err)
	}
	c, err := detect(head)
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	t, err := spoolTar(br, c, cfg.spoolDir, cfg.maxSpoolBytes)
	format := "tar"
	if c != plain {
		format += "+" + string(c)
	}
	return s.indexArchive(ctx, t, format, err)
}

// SeedName reports whether a directory entry's name can be a seed: hidden
// names are seeds still being written (the usual "write to .name, then
// rename"), and *.tmp and *.part are partial downloads.
func SeedName(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".tmp") && !strings.HasSuffix(name, ".part") &&
		!laterPartRE.MatchString(name) && !zarfLaterPartRE.MatchString(name)
}

// laterPartRE matches the parts of a split seed after its first: the seed
// is named by its first part (NAME.001 or NAME.000).
var laterPartRE = regexp.MustCompile(`\.(00[2-9]|0[1-9][0-9]|[1-9][0-9][0-9])$`)

// SplitParts lists the parts of a split seed named by path (its first
// part, or its base name), or none when path is no split seed.
// A zarf split package's parts are its header and its data parts.
func SplitParts(path string) ([]string, error) {
	if zarfHeaderRE.MatchString(path) {
		parts, _, ok, err := zarfParts(path)
		if ok && err == nil {
			return append([]string{path}, parts...), nil
		}
		if ok {
			return nil, err
		}
	}
	return splitParts(path)
}

// SeedsIn lists the seeds a path names: itself when it is a seed file or an
// OCI layout directory; otherwise, for a directory of seeds (k3s's
// agent/images), each entry with a seed name, sorted.
func SeedsIn(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return []string{path}, nil // Open says what is wrong
	}
	if _, err := os.Stat(filepath.Join(path, "oci-layout")); err == nil {
		return []string{path}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(path, dockerManifestFile)); err == nil {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if SeedName(e.Name()) {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("seed directory %s: no seeds in it: %w", path, errdefs.ErrNotFound)
	}
	return out, nil
}
