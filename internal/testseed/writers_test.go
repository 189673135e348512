package testseed

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWriteOCITar(t *testing.T) {
	var s Seed
	single := mustBuild(t, Standard("docker.io/library/demo:1.0", ocispec.Platform{}, false, Gzip))
	s.Add(single.Name, single.Manifest, single.Blobs)
	idxDesc, idxBlobs, children, err := BuildIndex(MultiPlatform{Docker: true, Images: []Image{
		Standard("", ocispec.Platform{OS: "linux", Architecture: "amd64"}, true, Gzip),
		Standard("", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true, Zstd),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Add("registry.example.com:5000/team/multi:v2", idxDesc, idxBlobs)
	s.AddRaw(single.Manifest, nil, single.Blobs)

	var buf1, buf2 bytes.Buffer
	if err := s.WriteOCITar(&buf1); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteOCITar(&buf2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf1.Bytes(), buf2.Bytes()) {
		t.Fatal("WriteOCITar not deterministic")
	}
	hdrs, data, order := readTar(t, buf1.Bytes())
	if !slices.IsSorted(order) || order[0] != "blobs/" || order[1] != "blobs/sha256/" {
		t.Errorf("entry order %v", order)
	}
	if string(data["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", data["oci-layout"])
	}
	nblobs := 0
	for name, p := range data {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hex != "" {
			nblobs++
			if digest.FromBytes(p).Encoded() != hex || hdrs[name].Size != int64(len(p)) {
				t.Errorf("blob %s content hash mismatch", name)
			}
		}
	}
	if nblobs != len(s.Blobs) {
		t.Errorf("%d blobs in tar, %d in seed", nblobs, len(s.Blobs))
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 3 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index.json = %s", data["index.json"])
	}
	wantRef := []string{"1.0", "v2", ""}
	for i, m := range idx.Manifests {
		if m.Annotations[AnnotationRefName] != wantRef[i] {
			t.Errorf("entry %d ref.name = %q, want %q", i, m.Annotations[AnnotationRefName], wantRef[i])
		}
	}
	if idx.Manifests[1].Annotations[AnnotationImageName] != "registry.example.com:5000/team/multi:v2" || idx.Manifests[0].Platform != nil {
		t.Errorf("entries = %+v", idx.Manifests)
	}

	var nested ocispec.Index
	if err := json.Unmarshal(data["blobs/sha256/"+idxDesc.Digest.Encoded()], &nested); err != nil {
		t.Fatal(err)
	}
	if nested.MediaType != MediaTypeDockerManifestList || len(nested.Manifests) != 2 {
		t.Fatalf("nested index = %+v", nested)
	}
	for i, m := range nested.Manifests {
		if m.Platform == nil || m.Platform.Architecture != children[i].Manifest.Platform.Architecture {
			t.Errorf("child %d platform %+v", i, m.Platform)
		}
		for _, d := range append([]ocispec.Descriptor{children[i].Config}, children[i].Layers...) {
			if _, ok := data["blobs/sha256/"+d.Digest.Encoded()]; !ok {
				t.Errorf("child %d blob %s missing", i, d.Digest)
			}
		}
	}

	dir := t.TempDir()
	if err := s.WriteOCIDir(dir); err != nil {
		t.Fatal(err)
	}
	for name, p := range data {
		if hdrs[name].Typeflag != tar.TypeReg {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, p) {
			t.Errorf("dir layout %s differs from tar (%v)", name, err)
		}
	}
}

func TestOCIRefName(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/demo:1.0":          "1.0",
		"localhost:5000/x/y:latest":           "latest",
		"docker.io/library/demo":              "docker.io/library/demo",
		"docker.io/library/demo@sha256:abcd":  "docker.io/library/demo@sha256:abcd",
		"docker.io/library/demo:t@sha256:abc": "t@sha256:abc",
	} {
		if got := ociRefName(in); got != want {
			t.Errorf("ociRefName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteDockerTar(t *testing.T) {
	a := mustBuild(t, Standard("demo:1.0", ocispec.Platform{}, true, Gzip))
	imgB := Standard("other:2.0", ocispec.Platform{}, true, Zstd)
	imgB.Config.Cmd = []string{"/bin/hi"}
	imgB.Layers = append(imgB.Layers, imgB.Layers[0]) // same diff twice in one image
	b := mustBuild(t, imgB)

	for _, symlink := range []bool{false, true} {
		imgs := []DockerImage{
			{RepoTags: []string{"demo:1.0", "localhost:5000/demo:latest"}, Built: a, SymlinkLayers: symlink},
			{RepoTags: []string{"other:2.0"}, Built: b, SymlinkLayers: symlink},
		}
		var buf bytes.Buffer
		if err := WriteDockerTar(&buf, imgs); err != nil {
			t.Fatal(err)
		}
		hdrs, data, order := readTar(t, buf.Bytes())
		if !slices.IsSorted(order) {
			t.Errorf("entry order %v", order)
		}
		var mfs []dockerManifest
		if err := json.Unmarshal(data["manifest.json"], &mfs); err != nil {
			t.Fatal(err)
		}
		if len(mfs) != 2 {
			t.Fatalf("manifest.json = %s", data["manifest.json"])
		}
		symlinks := 0
		for i, m := range mfs {
			built := imgs[i].Built
			if m.Config != built.Config.Digest.Encoded()+".json" || !bytes.Equal(data[m.Config], built.Blobs[built.Config.Digest]) {
				t.Errorf("image %d config %s", i, m.Config)
			}
			if len(m.Layers) != len(built.DiffIDs) {
				t.Fatalf("image %d: %d layers", i, len(m.Layers))
			}
			for j, l := range m.Layers {
				name := l
				if h := hdrs[name]; h != nil && h.Typeflag == tar.TypeSymlink {
					symlinks++
					name = path.Join(path.Dir(name), h.Linkname)
				}
				h := hdrs[name]
				if h == nil || h.Typeflag != tar.TypeReg || digest.FromBytes(data[name]) != built.DiffIDs[j] {
					t.Errorf("image %d layer %d (%s) does not hash to diffID", i, j, l)
				}
				dir := path.Dir(l)
				if string(data[dir+"/VERSION"]) != "1.0" || string(data[dir+"/json"]) != "{}" {
					t.Errorf("layer dir %s lacks VERSION/json", dir)
				}
			}
		}
		// a and b share all three diffs (compression differs, content does
		// not), and b repeats its first layer on top.
		if want := map[bool]int{false: 0, true: 4}[symlink]; symlinks != want {
			t.Errorf("symlink=%v: %d symlinked layers, want %d", symlink, symlinks, want)
		}
		var repos map[string]map[string]string
		if err := json.Unmarshal(data["repositories"], &repos); err != nil {
			t.Fatal(err)
		}
		if repos["demo"]["1.0"] != path.Dir(mfs[0].Layers[2]) || repos["localhost:5000/demo"]["latest"] == "" || repos["other"]["2.0"] == "" {
			t.Errorf("repositories = %s", data["repositories"])
		}
	}
}
