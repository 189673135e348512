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

// An inventory over the cap says so, naming the file and the cap; it
// used to fail with a bare "unexpected EOF".
func TestInventoryOverCap(t *testing.T) {
	defer func(n int64) { maxInventory = n }(maxInventory)
	maxInventory = 1 << 10
	p := filepath.Join(t.TempDir(), "big.json")
	body := `{"version": 1, "node": "` + strings.Repeat("x", 2<<10) + `", "blobs": []}`
	os.WriteFile(p, []byte(body), 0o644)
	_, err := ReadInventory(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "1024 byte cap") || !errdefs.IsInvalidArgument(err) {
		t.Errorf("%v; want an invalid-argument error naming %s and the 1024 byte cap", err, p)
	}
	// At the cap exactly, it reads.
	body = `{"version": 1, "node": "n", "blobs": []}`
	maxInventory = int64(len(body))
	os.WriteFile(p, []byte(body), 0o644)
	if _, err := ReadInventory(p); err != nil {
		t.Errorf("an inventory of exactly the cap: %v", err)
	}
}
