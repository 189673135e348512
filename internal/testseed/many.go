package testseed

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Many is a seed of n distinct one-layer images (one small uncompressed
// file each) named REPO-<i>:1 for scale tests and benchmarks: a few
// kilobytes and a few microseconds an image, so thousands are cheap.
func Many(n int, repo string, p ocispec.Platform) (*Seed, error) {
	var s Seed
	for i := range n {
		name := fmt.Sprintf("%s-%d:1", repo, i)
		b, err := Build(Image{Name: name, Platform: p, Layers: []Layer{{Files: []File{
			{Name: "etc/image", Content: []byte(name + "\n")},
		}}}})
		if err != nil {
			return nil, err
		}
		s.Add(name, b.Manifest, b.Blobs)
	}
	return &s, nil
}
