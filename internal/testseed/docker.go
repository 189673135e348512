package testseed

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// DockerImage is one image of a `docker save` archive.
type DockerImage struct {
	RepoTags []string // written verbatim, e.g. "demo:1.0" (docker uses familiar names)
	Built    *Built
	// SymlinkLayers makes a layer that was already written earlier in the
	// archive appear as a symlink "<id2>/layer.tar" -> "../<id>/layer.tar",
	// as legacy docker save does for layers shared between images. Without
	// it a repeated layer simply reuses the earlier directory.
	SymlinkLayers bool
}

// dockerManifest is one element of manifest.json; field order and names
// follow docker's own encoder.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteDockerTar writes imgs in the legacy `docker save` (v1.2) layout:
//
//	<confighex>.json              image config, verbatim
//	<id>/VERSION, <id>/json       "1.0" and "{}"
//	<id>/layer.tar                uncompressed layer; id = hex of its diffID
//	manifest.json                 [{"Config","RepoTags","Layers"}]
//	repositories                  {"repo":{"tag":"<top layer id>"}}
//
// Layers are stored uncompressed whatever the blobs' compression, so each
// layer.tar hashes to its diffID. Entries are sorted by name, like the
// directory walk docker uses to build the tar.
func WriteDockerTar(w io.Writer, imgs []DockerImage) error {
	var es []entry
	var manifests []dockerManifest
	repos := map[string]map[string]string{}
	firstDir := map[digest.Digest]string{} // diffID -> directory holding the real layer.tar

	for n, img := range imgs {
		b := img.Built
		if b == nil {
			return fmt.Errorf("testseed: docker image %d: nil Built", n)
		}
		cfg, ok := b.Blobs[b.Config.Digest]
		if !ok {
			return fmt.Errorf("testseed: docker image %d: config blob %s missing", n, b.Config.Digest)
		}
		cfgName := b.Config.Digest.Encoded() + ".json"
		es = append(es, entry{name: cfgName, typ: tar.TypeReg, mode: 0o644, data: cfg})

		m := dockerManifest{Config: cfgName, RepoTags: img.RepoTags, Layers: []string{}}
		var top string
		for i, diffID := range b.DiffIDs {
			raw, ok := b.Uncompressed[diffID]
			if !ok {
				return fmt.Errorf("testseed: docker image %d: uncompressed layer %s missing", n, diffID)
			}
			id := diffID.Encoded()
			first, seen := firstDir[diffID]
			switch {
			case !seen:
				firstDir[diffID] = id
				es = append(es, layerDir(id)...)
				es = append(es, entry{name: id + "/layer.tar", typ: tar.TypeReg, mode: 0o644, data: raw})
			case img.SymlinkLayers:
				// Derive a distinct directory per (image, position),
				// standing in for docker's v1 layer ids which differ when
				// the same diff sits in different images or chains.
				id = digest.FromString(b.Config.Digest.String() + "\n" + strconv.Itoa(i) + "\n" + diffID.String()).Encoded()
				if id != first {
					es = append(es, layerDir(id)...)
					es = append(es, entry{name: id + "/layer.tar", typ: tar.TypeSymlink, mode: 0o777, linkname: "../" + first + "/layer.tar"})
				}
			default:
				id = first
			}
			m.Layers = append(m.Layers, id+"/layer.tar")
			top = id
		}
		manifests = append(manifests, m)

		for _, rt := range img.RepoTags {
			repo, tag, ok := splitRepoTag(rt)
			if !ok || top == "" {
				continue
			}
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = top
		}
	}

	if manifests == nil {
		manifests = []dockerManifest{}
	}
	mj, err := json.Marshal(manifests)
	if err != nil {
		return err
	}
	es = append(es, entry{name: "manifest.json", typ: tar.TypeReg, mode: 0o644, data: mj})
	if len(repos) > 0 {
		// docker omits the file when nothing is tagged; so do we.
		rj, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		es = append(es, entry{name: "repositories", typ: tar.TypeReg, mode: 0o644, data: rj})
	}
	sortEntries(es)
	return writeTarEntries(w, es)
}

// layerDir returns the per-layer directory and its legacy metadata files.
func layerDir(id string) []entry {
	return []entry{
		{name: id + "/", typ: tar.TypeDir, mode: 0o755},
		{name: id + "/VERSION", typ: tar.TypeReg, mode: 0o644, data: []byte("1.0")},
		{name: id + "/json", typ: tar.TypeReg, mode: 0o644, data: []byte("{}")},
	}
}

// splitRepoTag splits "repo:tag" at the last colon after the last slash,
// so registry ports ("host:5000/x:1") are not mistaken for tags.
func splitRepoTag(s string) (repo, tag string, ok bool) {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.LastIndexByte(s, '/') > i {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
