package fetcher

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ctrarchive "github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
)

// importedIndex runs containerd's own importer (what `ctr images import`
// uses) on the archive at p and returns the index it produces.
func importedIndex(t *testing.T, p string) string {
	t.Helper()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	desc, err := ctrarchive.ImportIndex(context.Background(), store, f)
	if err != nil {
		t.Fatalf("containerd ImportIndex: %v", err)
	}
	return desc.Digest.String()
}

func dockerSeed(t *testing.T, f *fixture, symlinks bool, c testseed.Compression) string {
	multiAMD := f.kids[0]
	imgs := []testseed.DockerImage{
		{RepoTags: []string{"demo:1.0", "registry.local/demo:latest"}, Built: f.demo, SymlinkLayers: symlinks},
		{RepoTags: []string{"multi:amd64"}, Built: multiAMD, SymlinkLayers: symlinks},
		{Built: f.kids[1], SymlinkLayers: symlinks},
	}
	format := "docker.tar"
	switch c {
	case testseed.Gzip:
		format += ".gz"
	case testseed.Zstd:
		format += ".zst"
	}
	return writeCompressed(t, t.TempDir(), format, func(w io.Writer) error { return testseed.WriteDockerTar(w, imgs) })
}

// TestDockerParity: a docker save tarball maps to exactly the index and
// manifests containerd's importer writes, so image digests match ctr's.
func TestDockerParity(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		symlinks bool
		c        testseed.Compression
	}{{"plain", false, testseed.Uncompressed}, {"symlinked-layers", true, testseed.Uncompressed}, {"gzip", true, testseed.Gzip}} {
		t.Run(tc.name, func(t *testing.T) {
			p := dockerSeed(t, f, tc.symlinks, tc.c)
			s := openSeed(t, p)
			if tc.c == testseed.Uncompressed {
				if want := importedIndex(t, p); s.Index().Digest.String() != want {
					t.Fatalf("index %s, containerd's importer made %s", s.Index().Digest, want)
				}
			}
			imgs, err := s.Images(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 4 || imgs[0].Name != "docker.io/library/demo:1.0" || imgs[1].Name != "registry.local/demo:latest" || imgs[3].Name != "" {
				t.Fatalf("images: %+v", imgs)
			}
			if errs := s.Verify(ctx, layerlimit.Default()); len(errs) != 0 {
				t.Fatalf("verify: %v", errs)
			}
			// containerd normalises arm64/v8 read from a config to arm64.
			ps, err := Platforms(ctx, s, imgs[3].Target)
			if err != nil || FormatPlatforms(ps) != "linux/arm64" {
				t.Fatalf("platform of unnamed image: %v %v", ps, err)
			}
			r := NewResolver(Seeds{s}, nil)
			for _, ref := range []string{"demo:1.0", "registry.local/demo", "docker.io/library/multi:amd64"} {
				if _, _, err := r.Resolve(ctx, ref); err != nil {
					t.Errorf("resolve %s: %v", ref, err)
				}
			}
		})
	}
}

// TestPeerArchives reads what skopeo writes (docker-archive and
// oci-archive) from our OCI layout, and matches containerd's importer.
func TestPeerArchives(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is required (apt-get install skopeo; .ci/run installs it)")
	}
	ctx := context.Background()
	f := newFixture(t)
	src := f.write(t, "oci-dir")
	dir := t.TempDir()
	for _, tc := range []struct{ dest, file, ref string }{
		{"docker-archive:%s:peer/demo:1.0", "docker.tar", "docker.io/peer/demo:1.0"},
		{"oci-archive:%s:peer/demo:1.0", "oci.tar", "peer/demo:1.0"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			out, err := exec.Command(skopeo, "copy", "--insecure-policy", "oci:"+src+":1.0",
				fmtDest(tc.dest, p)).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo: %v\n%s", err, out)
			}
			s := openSeed(t, p)
			if want := importedIndex(t, p); s.Index().Digest.String() != want {
				t.Fatalf("index %s, containerd's importer made %s", s.Index().Digest, want)
			}
			if errs := s.Verify(ctx, layerlimit.Default()); len(errs) != 0 {
				t.Fatalf("verify: %v", errs)
			}
			_, desc, err := NewResolver(Seeds{s}, nil).Resolve(ctx, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, s, desc); len(got) == 0 {
				t.Fatal("empty manifest")
			}
		})
	}
}

func fmtDest(pattern, p string) string {
	out := []byte{}
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '%' && i+1 < len(pattern) && pattern[i+1] == 's' {
			out = append(out, p...)
			i++
			continue
		}
		out = append(out, pattern[i])
	}
	return string(out)
}
