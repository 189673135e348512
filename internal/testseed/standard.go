package testseed

import (
	"archive/tar"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Standard returns a small but realistic image that exercises what an
// unpacker must get right, with every layer compressed as c:
//
//   - layer 1: directories, regular files, an executable (bin/hello) and a
//     relative symlink (bin/hi -> hello), plus a platform-specific file so
//     multi-platform indexes get distinct base layers;
//   - layer 2: rewrites etc/hello.conf, adds files and a directory, and
//     deletes usr/share/demo/remove-me.txt with a whiteout;
//   - layer 3: makes var/lib/demo/state opaque (hiding a and b from layer
//     1) while adding "fresh" there, and adds a hardlink.
//
// Expected final tree (files only): bin/hello, bin/hi -> hello,
// etc/hello.conf (layer-2 content), etc/platform, etc/demo.d/extra.conf,
// usr/share/demo/data.txt, usr/share/demo/more.txt,
// usr/share/demo/notes.txt, usr/share/demo/notes-link.txt (hardlink),
// var/lib/demo/state/fresh.
func Standard(name string, platform ocispec.Platform, docker bool, c Compression) Image {
	plat := defaultPlatform(platform)
	platStr := plat.OS + "/" + plat.Architecture
	if plat.Variant != "" {
		platStr += "/" + plat.Variant
	}
	dir := func(n string) File { return File{Name: n, Type: tar.TypeDir} }
	file := func(n, content string) File { return File{Name: n, Content: []byte(content)} }

	layer1 := []File{
		dir("bin"),
		{Name: "bin/hello", Mode: 0o755, Content: []byte("#!/bin/sh\necho \"hello from testseed ($(cat /etc/platform))\"\n")},
		{Name: "bin/hi", Type: tar.TypeSymlink, Linkname: "hello"},
		dir("etc"),
		file("etc/hello.conf", "greeting=hello\nversion=1\n"),
		file("etc/platform", platStr+"\n"),
		dir("usr"),
		dir("usr/share"),
		dir("usr/share/demo"),
		file("usr/share/demo/data.txt", filler("data", 48)),
		file("usr/share/demo/remove-me.txt", "this file is deleted by layer 2\n"),
		dir("var"),
		dir("var/lib"),
		dir("var/lib/demo"),
		dir("var/lib/demo/state"),
		file("var/lib/demo/state/a", "a from layer 1\n"),
		file("var/lib/demo/state/b", "b from layer 1\n"),
	}
	layer2 := []File{
		dir("etc"),
		file("etc/hello.conf", "greeting=hello again\nversion=2\n"),
		dir("etc/demo.d"),
		file("etc/demo.d/extra.conf", "extra=true\n"),
		dir("usr/share/demo"),
		file("usr/share/demo/more.txt", filler("more", 32)),
		Whiteout("usr/share/demo/remove-me.txt"),
	}
	layer3 := []File{
		dir("usr/share/demo"),
		file("usr/share/demo/notes.txt", filler("notes", 24)),
		{Name: "usr/share/demo/notes-link.txt", Type: tar.TypeLink, Linkname: "usr/share/demo/notes.txt"},
		dir("var/lib/demo/state"),
		OpaqueDir("var/lib/demo/state"),
		file("var/lib/demo/state/fresh", "fresh from layer 3\n"),
	}

	return Image{
		Name:     name,
		Platform: plat,
		Docker:   docker,
		Layers: []Layer{
			{Files: layer1, Compression: c},
			{Files: layer2, Compression: c},
			{Files: layer3, Compression: c},
		},
		Config: ocispec.ImageConfig{
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"DEMO_GREETING=hello",
			},
			Cmd:        []string{"/bin/hello"},
			WorkingDir: "/var/lib/demo",
			Labels:     map[string]string{"org.opencontainers.image.title": "testseed-standard"},
		},
	}
}

// filler returns n numbered lines of text (~60 bytes each) so layers carry
// a few KB of compressible, deterministic content.
func filler(tag string, n int) string {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "%s line %04d: the quick brown fox jumps over the lazy dog\n", tag, i)
	}
	return sb.String()
}
