package test

import (
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
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
