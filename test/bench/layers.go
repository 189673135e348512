package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

// header pins everything that would leak host state into the tar.
func header(name string, typ byte, mode, size int64, link string) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, Linkname: link,
		ModTime: testseed.FixedTime, Format: tar.FormatPAX}
}

// addParents writes directory entries for every ancestor of p and p itself.
func addParents(tw *tar.Writer, p string) error {
	parts := strings.Split(p, "/")
	for i := range parts {
		if err := tw.WriteHeader(header(strings.Join(parts[:i+1], "/")+"/", tar.TypeDir, 0o755, 0, "")); err != nil {
			return err
		}
	}
	return nil
}

// addTree adds the tree at src under prefix, in lexical order: regular
// files, directories and symlinks; anything else is skipped.
func addTree(tw *tar.Writer, src, prefix string) (int, error) {
	if err := addParents(tw, filepath.Dir(prefix)); err != nil {
		return 0, err
	}
	files := 0
	err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := prefix
		if rel != "." {
			name = prefix + "/" + filepath.ToSlash(rel)
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		perm := int64(fi.Mode().Perm())
		switch {
		case fi.IsDir():
			return tw.WriteHeader(header(name+"/", tar.TypeDir, perm, 0, ""))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return tw.WriteHeader(header(name, tar.TypeSymlink, 0o777, 0, target))
		case fi.Mode().IsRegular():
			files++
			return copyFile(tw, p, header(name, tar.TypeReg, perm, fi.Size(), ""))
		}
		return nil
	})
	return files, err
}

func copyFile(tw *tar.Writer, p string, hdr *tar.Header) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, hdr.Size)
	return err
}

// addRandom adds one file of n bytes from a fixed-seed ChaCha8 stream:
// incompressible, yet identical on every machine.
func addRandom(tw *tar.Writer, n int64) (int, error) {
	if err := addParents(tw, "opt/bench"); err != nil {
		return 0, err
	}
	if err := tw.WriteHeader(header("opt/bench/random.bin", tar.TypeReg, 0o644, n, "")); err != nil {
		return 0, err
	}
	rng := rand.NewChaCha8([32]byte{'c', 't', 'r', '-', 's', 'e', 'e', 'd'})
	_, err := io.CopyN(tw, rng, n)
	return 1, err
}

// addConfig adds a handful of small files such as the last layer of an
// application image carries.
func addConfig(tw *tar.Writer) (int, error) {
	files := map[string]string{
		"etc/hostname":   "bench\n",
		"etc/os-release": "NAME=bench\nID=bench\nVERSION_ID=1\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
		"etc/group":      "root:x:0:\nnogroup:x:65534:\n",
	}
	var yaml, js strings.Builder
	js.WriteString("{\n")
	for i := range 200 {
		fmt.Fprintf(&yaml, "key%03d: value-%d\n", i, i*i)
		fmt.Fprintf(&js, "  \"key%03d\": %d,\n", i, i*i)
	}
	js.WriteString("  \"end\": true\n}\n")
	files["etc/bench/app.yaml"], files["etc/bench/app.json"] = yaml.String(), js.String()
	if err := addParents(tw, "etc/bench"); err != nil {
		return 0, err
	}
	names := []string{"etc/bench/app.json", "etc/bench/app.yaml", "etc/group", "etc/hostname", "etc/os-release", "etc/passwd"}
	for _, n := range names {
		if err := tw.WriteHeader(header(n, tar.TypeReg, 0o644, int64(len(files[n])), "")); err != nil {
			return 0, err
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			return 0, err
		}
	}
	if err := tw.WriteHeader(header("etc/bench/current", tar.TypeSymlink, 0o777, 0, "app.yaml")); err != nil {
		return 0, err
	}
	return len(names), nil
}

// addLibs adds n files of size bytes each under usr/lib/bench, as a tree
// of shared libraries is: big files, about half of each compressible
// (text, symbol tables) and half not (code), the same on every machine.
func addLibs(tw *tar.Writer, n int, size int64) (int, error) {
	if err := addParents(tw, "usr/lib/bench"); err != nil {
		return 0, err
	}
	rng := rand.NewChaCha8([32]byte{'l', 'i', 'b', 's'})
	text := []byte(strings.Repeat("_ZN4core3ptr13drop_in_place17h_symbol_table_entry_", 1<<10))
	for i := range n {
		name := fmt.Sprintf("usr/lib/bench/lib%03d.so.1", i)
		if err := tw.WriteHeader(header(name, tar.TypeReg, 0o755, size, "")); err != nil {
			return 0, err
		}
		for left := size; left > 0; {
			chunk := min(left, int64(len(text)))
			if _, err := io.CopyN(tw, rng, chunk/2); err != nil {
				return 0, err
			}
			if _, err := tw.Write(text[:chunk-chunk/2]); err != nil {
				return 0, err
			}
			left -= chunk
		}
	}
	return n, nil
}

// addWhiteouts deletes, as a later layer does, a file of each of the
// layers below it and replaces one directory wholesale (an opaque
// whiteout), so the applier's whiteout paths are timed too.
func addWhiteouts(tw *tar.Writer) (int, error) {
	for _, d := range []string{"usr/lib/bench", "usr/local/go/bin", "opt/bench"} {
		if err := addParents(tw, d); err != nil {
			return 0, err
		}
	}
	for _, n := range []string{"usr/lib/bench/.wh.lib000.so.1", "usr/local/go/bin/.wh.gofmt", "opt/bench/.wh..wh..opq"} {
		if err := tw.WriteHeader(header(n, tar.TypeReg, 0o644, 0, "")); err != nil {
			return 0, err
		}
	}
	return 3, nil
}
