package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
)

// podman is the real podman (Debian's), with a storage of the test's own
// (vfs: no mounts), so no host image store is touched.
func podman(t *testing.T, root string, args ...string) string {
	t.Helper()
	full := append([]string{"--root", filepath.Join(root, "storage"), "--runroot", filepath.Join(root, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)
	out, err := exec.Command("podman", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Archives podman save writes, in each of its formats (docker-archive
// with -m for two images, oci-archive, oci-dir), import with ctr-seed as
// ctr imports them where ctr reads them, unpacked.
func TestPodmanSeeds(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is needed (.ci/run installs it): %v", err)
	}
	root := t.TempDir()
	a := uniqueImage(t, "", impHostPlatform(), true, testseed.Gzip)
	b := uniqueImage(t, "", impHostPlatform(), true, testseed.Gzip)
	in := writeDocker(t, []testseed.DockerImage{{RepoTags: []string{"registry.local/podman/a:1"}, Built: a}, {RepoTags: []string{"registry.local/podman/b:2"}, Built: b}}, testseed.Uncompressed)
	podman(t, root, "load", "-q", "-i", in)
	dir := t.TempDir()
	for _, tc := range []struct {
		format string
		refs   []string
		ctr    bool // ctr images import reads it too
	}{
		{"docker-archive", []string{"registry.local/podman/a:1", "registry.local/podman/b:2"}, true},
		{"oci-archive", []string{"registry.local/podman/a:1"}, true},
		{"oci-dir", []string{"registry.local/podman/a:1"}, false},
	} {
		t.Run(tc.format, func(t *testing.T) {
			out := filepath.Join(dir, tc.format)
			args := []string{"save", "-q", "--format", tc.format, "-o", out}
			if len(tc.refs) > 1 {
				args = append(args, "-m")
			}
			podman(t, root, append(args, tc.refs...)...)
			ns := namespace(t)
			mustImport(t, ns, out)
			got := impTargets(t, ns)
			for _, r := range tc.refs {
				if _, ok := got[r]; !ok {
					t.Errorf("no image %s in %v", r, got)
				}
			}
			impAssertUnpacked(t, ns, tc.refs...)
			if tc.ctr {
				nsCtr := ns + "-ctr"
				ctr(t, nsCtr, "images", "import", out)
				want := impTargets(t, nsCtr)
				if !maps.Equal(got, want) {
					t.Errorf("ctr-seed %v, ctr %v", got, want)
				}
				if w, g := snapshotChain(t, nsCtr), snapshotChain(t, ns); !slices.Equal(w, g) {
					t.Errorf("snapshots: ctr %v, ctr-seed %v", w, g)
				}
			}
		})
	}
}

// docker25Fixture is what `docker save` writes since Docker 25, built from
// its documented layout (no Docker engine runs here): an OCI layout whose
// index names the image (io.containerd.image.name, ref.name the tag), and
// a manifest.json beside it pointing into blobs/, for `docker load` of
// older Dockers. named=false drops the index's names, so the RepoTags of
// manifest.json are all that names the image.
func docker25Fixture(t *testing.T, name string, b *testseed.Built, named bool) string {
	t.Helper()
	var s testseed.Seed
	if named {
		s.Add(name, b.Manifest, b.Blobs)
	} else {
		s.AddRaw(b.Manifest, nil, b.Blobs)
	}
	var layout bytes.Buffer
	if err := s.WriteOCITar(&layout); err != nil {
		t.Fatal(err)
	}
	files := testutil.TarFiles(t, layout.Bytes())
	var layers []string
	for _, l := range b.Layers {
		layers = append(layers, "blobs/sha256/"+l.Digest.Encoded())
	}
	mj, _ := json.Marshal([]map[string]any{{"Config": "blobs/sha256/" + b.Config.Digest.Encoded(), "RepoTags": []string{name}, "Layers": layers}})
	files["manifest.json"] = string(mj)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var es []testutil.RawEntry
	for _, n := range names {
		es = append(es, testutil.RawEntry{Name: n, Body: []byte(files[n])})
	}
	return testutil.WriteFile(t, filepath.Join(t.TempDir(), "docker25.tar"), testutil.RawTar(t, es...))
}

// A Docker 25+ save imports by its index's names, or by manifest.json's
// RepoTags when the index names nothing, as ctr imports it.
func TestDocker25Seeds(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprintf("index-names-%v", named), func(t *testing.T) {
			b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
			name := "docker.io/ctrseed-test/docker25:1"
			seed := docker25Fixture(t, name, b, named)
			ns := namespace(t)
			mustImport(t, ns, seed)
			impAssertTargets(t, ns, map[string]digest.Digest{name: b.Manifest.Digest})
			impAssertUnpacked(t, ns, name)
			if named {
				ctr(t, ns+"-ctr", "images", "import", seed)
				if got := impTargets(t, ns+"-ctr"); !maps.Equal(got, impTargets(t, ns)) {
					t.Errorf("ctr %v, ctr-seed %v", got, impTargets(t, ns))
				}
			}
		})
	}
}

// An OCI layout umoci made (umoci new, then umoci insert of a file: one
// layer) names its image by a tag alone; with --base-name it imports as
// BASE:TAG, unpacked, as ctr imports it.
func TestUmociLayout(t *testing.T) {
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Fatalf("umoci is needed (.ci/run installs it): %v", err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	file := testutil.WriteFile(t, filepath.Join(t.TempDir(), "hello"), []byte(t.Name()+"\n"))
	for _, args := range [][]string{
		{"init", "--layout", dir},
		{"new", "--image", dir + ":1.0"},
		{"insert", "--image", dir + ":1.0", file, "/etc/hello"},
	} {
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %v: %v\n%s", args, err, out)
		}
	}
	ns := namespace(t)
	mustImport(t, ns, "--base-name", "registry.local/umoci/app", dir)
	got := impTargets(t, ns)
	if _, ok := got["registry.local/umoci/app:1.0"]; !ok || len(got) != 1 {
		t.Fatalf("images %v; want registry.local/umoci/app:1.0", got)
	}
	impAssertUnpacked(t, ns, "registry.local/umoci/app:1.0")
	// ctr reads a layout as a tar only: the same layout, tarred.
	tarred := filepath.Join(t.TempDir(), "umoci.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarred, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	ctr(t, ns+"-ctr", "images", "import", "--base-name", "registry.local/umoci/app", tarred)
	if want := impTargets(t, ns+"-ctr"); !maps.Equal(got, want) {
		t.Errorf("ctr-seed %v, ctr %v", got, want)
	}
}

// What `ctr images export` writes (nerdctl save writes the same: both are
// containerd's exporter; nerdctl is not on the module proxy) imports back
// with ctr-seed under the same names and digests.
func TestCtrExportRoundTrip(t *testing.T) {
	b := uniqueImage(t, "registry.local/export/app:1", impHostPlatform(), false, testseed.Gzip)
	src := namespace(t)
	mustImport(t, src, writeOCI(t, impOciSeedOf(t, b), testseed.Gzip))
	out := filepath.Join(t.TempDir(), "export.tar")
	// --local: the same exporter (core/images/archive) run in ctr's
	// process. Through the transfer service, ctr v2.4 can exit before its
	// goroutine copying the daemon's stream into the file has written the
	// tar's last records (core/transfer/archive/exporter.go, MarshalAny),
	// which left a truncated export.tar once in this test's CI runs.
	ctr(t, src, "images", "export", "--local", out, b.Name)
	ns := src + "-again"
	mustImport(t, ns, out)
	impAssertTargets(t, ns, map[string]digest.Digest{b.Name: b.Manifest.Digest})
	impAssertUnpacked(t, ns, b.Name)
}
