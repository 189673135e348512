package saver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// InventoryVersion is the version of the inventory schema this build
// writes and the newest it reads.
const InventoryVersion = 1

// Inventory is what a node holds: the small, stable JSON `ctr-seed
// inventory` writes and `save --have` reads. Version 1:
//
//	{"version": 1, "node": "edge-7",
//	 "blobs": [{"digest": "sha256:…", "size": 123}, …],   // sorted by digest
//	 "images": [{"namespace": "k8s.io", "name": "…", "target": "sha256:…"}, …]}
//
// Blobs are the node's whole content store (containerd shares content
// between namespaces, so an import in any namespace can take them without
// a byte read or sent).
type Inventory struct {
	Version int             `json:"version"`
	Node    string          `json:"node"`
	Blobs   []InventoryBlob `json:"blobs"`
	Images  []InventoryItem `json:"images"`

	has map[digest.Digest]int64
}

// InventoryBlob is one blob of the node's content store.
type InventoryBlob struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// InventoryItem is one image record.
type InventoryItem struct {
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Target    digest.Digest `json:"target"`
}

// Has reports whether the node holds d (digest and size).
func (inv *Inventory) Has(d ocispec.Descriptor) bool {
	n, ok := inv.has[d.Digest]
	return ok && n == d.Size
}

// TakeInventory lists what the containerd behind c holds: its content in
// every namespace, and the images of ns (or of every namespace).
func TakeInventory(ctx context.Context, c *client.Client, node, ns string, allNamespaces bool) (*Inventory, error) {
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	inv := &Inventory{Version: InventoryVersion, Node: node, Blobs: []InventoryBlob{}, Images: []InventoryItem{}}
	blobs := map[digest.Digest]int64{}
	for _, n := range nss {
		nctx := namespaces.WithNamespace(ctx, n)
		if err := c.ContentStore().Walk(nctx, func(i content.Info) error {
			blobs[i.Digest] = i.Size
			return nil
		}); err != nil {
			return nil, fmt.Errorf("namespace %s: listing content: %w", n, err)
		}
		if !allNamespaces && n != ns {
			continue
		}
		imgs, err := c.ImageService().List(nctx)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: listing images: %w", n, err)
		}
		for _, img := range imgs {
			inv.Images = append(inv.Images, InventoryItem{Namespace: n, Name: img.Name, Target: img.Target.Digest})
		}
	}
	for d, n := range blobs {
		inv.Blobs = append(inv.Blobs, InventoryBlob{Digest: d, Size: n})
	}
	sort.Slice(inv.Blobs, func(i, j int) bool { return inv.Blobs[i].Digest < inv.Blobs[j].Digest })
	sort.Slice(inv.Images, func(i, j int) bool {
		a, b := inv.Images[i], inv.Images[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	inv.index()
	return inv, nil
}

func (inv *Inventory) index() {
	inv.has = make(map[digest.Digest]int64, len(inv.Blobs))
	for _, b := range inv.Blobs {
		inv.has[b.Digest] = b.Size
	}
}

// Write encodes the inventory (stable: sorted, indented).
func (inv *Inventory) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// maxInventory caps what ReadInventory reads: an inventory of a node with
// a million blobs is about 100 MB. A variable for tests.
var maxInventory int64 = 256 << 20

// ReadInventory reads an inventory file.
func ReadInventory(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	defer f.Close()
	var inv Inventory
	lr := &io.LimitedReader{R: f, N: maxInventory + 1}
	if err := json.NewDecoder(lr).Decode(&inv); err != nil {
		if lr.N == 0 {
			return nil, fmt.Errorf("inventory %s: larger than the %d byte cap for inventories: %w", path, maxInventory, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("inventory %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if inv.Version < 1 || inv.Version > InventoryVersion {
		return nil, fmt.Errorf("inventory %s: version %d, this ctr-seed reads up to %d: %w", path, inv.Version, InventoryVersion, errdefs.ErrNotImplemented)
	}
	for _, b := range inv.Blobs {
		if err := b.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("inventory %s: blob %q: %v: %w", path, b.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	inv.index()
	return &inv, nil
}
