package saver

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An inventory round-trips through its file, answers Has by digest and
// size, and refuses versions and digests it cannot read.
func TestInventoryFile(t *testing.T) {
	d := digest.FromString("layer")
	inv := &Inventory{Version: InventoryVersion, Node: "edge-1", Blobs: []InventoryBlob{{Digest: d, Size: 5}}, Images: []InventoryItem{}}
	var buf bytes.Buffer
	if err := inv.Write(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "inv.json")
	os.WriteFile(p, buf.Bytes(), 0o644)
	got, err := ReadInventory(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != "edge-1" || !got.Has(ocispec.Descriptor{Digest: d, Size: 5}) || got.Has(ocispec.Descriptor{Digest: d, Size: 6}) {
		t.Errorf("read back %+v", got)
	}
	for body, want := range map[string]string{
		`{"version": 2, "node": "x", "blobs": []}`:                       "version 2",
		`{"version": 1, "node": "x", "blobs": [{"digest": "deadbeef"}]}`: `"deadbeef"`,
		`not json`: "inventory",
	} {
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ReadInventory(p); err == nil || !strings.Contains(err.Error(), want) || !(errdefs.IsInvalidArgument(err) || errdefs.IsNotImplemented(err)) {
			t.Errorf("%s: %v; want an error about %s", body, err, want)
		}
	}
}
