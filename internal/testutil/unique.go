package testutil

import (
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// UniqueLayer is a layer of one file, etc/test-name, whose text is unique
// to the test, name and p: an image that carries it has content that is
// in no daemon yet (containerd shares blobs across namespaces).
func UniqueLayer(t testing.TB, name string, p ocispec.Platform, c testseed.Compression) testseed.Layer {
	return testseed.Layer{Compression: c, Files: []testseed.File{
		{Name: "etc/test-name", Content: []byte(t.Name() + " " + name + " " + p.Architecture)},
	}}
}

// UniqueImage is testseed's standard image plus UniqueLayer.
func UniqueImage(t testing.TB, name string, p ocispec.Platform, docker bool, c testseed.Compression) *testseed.Built {
	t.Helper()
	img := testseed.Standard(name, p, docker, c)
	img.Layers = append(img.Layers, UniqueLayer(t, name, p, c))
	return Build(t, img)
}

// DeltaImages are two versions of an image, gzip-layered: v1 is
// UniqueImage(v1Name); v2 has every layer of v1 and one of its own, so a
// delta seed of v2 for a node holding v1 leaves out all but that one.
func DeltaImages(t testing.TB, v1Name, v2Name string, p ocispec.Platform) (v1, v2 *testseed.Built) {
	t.Helper()
	v1 = UniqueImage(t, v1Name, p, false, testseed.Gzip)
	img := testseed.Standard(v2Name, p, false, testseed.Gzip)
	img.Layers = append(img.Layers, UniqueLayer(t, v1Name, p, testseed.Gzip),
		testseed.Layer{Compression: testseed.Gzip, Files: []testseed.File{{Name: "app/v2", Content: []byte(t.Name() + " v2")}}})
	return v1, Build(t, img)
}

// Build is testseed.Build failing the test on error.
func Build(t testing.TB, img testseed.Image) *testseed.Built {
	t.Helper()
	b, err := testseed.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
