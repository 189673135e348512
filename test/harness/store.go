package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/ctr-seed/ctr-seed/importer"
	digest "github.com/opencontainers/go-digest"
)

// NSContext is a background context in containerd namespace ns.
func NSContext(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

// SeedLeases lists the leases ctr-seed's importer holds in ns.
func SeedLeases(t testing.TB, c *client.Client, ns string) []leases.Lease {
	t.Helper()
	ls, err := c.LeasesService().List(NSContext(ns), fmt.Sprintf("labels.%q", importer.LeaseLabel))
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// AssertNoSeedLeases checks that no ctr-seed lease is left in ns: every
// import, failed or not, deletes its own.
func AssertNoSeedLeases(t testing.TB, c *client.Client, ns string) {
	t.Helper()
	if ls := SeedLeases(t, c, ns); len(ls) != 0 {
		t.Errorf("ctr-seed leases left behind in %s: %v", ns, ls)
	}
}

// Ingests lists the partial writes the content store holds in ns, as
// "ref (offset/total)".
func Ingests(t testing.TB, c *client.Client, ns string) []string {
	t.Helper()
	sts, err := c.ContentStore().ListStatuses(NSContext(ns))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range sts {
		out = append(out, fmt.Sprintf("%s (%d/%d)", st.Ref, st.Offset, st.Total))
	}
	return out
}

// Snapshots lists the overlayfs snapshots of ns, sorted: committed ones as
// "name<-parent", others as "kind:name".
func Snapshots(t testing.TB, c *client.Client, ns string) (committed, other []string) {
	t.Helper()
	err := c.SnapshotService("overlayfs").Walk(NSContext(ns), func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindCommitted {
			committed = append(committed, i.Name+"<-"+i.Parent)
		} else {
			other = append(other, i.Kind.String()+":"+i.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(committed)
	slices.Sort(other)
	return committed, other
}

// Images lists the image records of ns by name.
func Images(t testing.TB, c *client.Client, ns string) map[string]images.Image {
	t.Helper()
	imgs, err := c.ImageService().List(NSContext(ns))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]images.Image{}
	for _, img := range imgs {
		m[img.Name] = img
	}
	return m
}

// ImageTargets lists the image records of ns as name → target.
func ImageTargets(t testing.TB, c *client.Client, ns string) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	for n, img := range Images(t, c, ns) {
		out[n] = img.Target.Digest
	}
	return out
}

// AssertNothingLeft checks that ns holds no image, no ctr-seed lease, no
// overlayfs snapshot, no ingest, and none of blobs: what a failed or
// interrupted import must leave in a namespace it had to itself.
func AssertNothingLeft(t testing.TB, c *client.Client, ns string, blobs ...digest.Digest) {
	t.Helper()
	ctx := NSContext(ns)
	for _, n := range slices.Sorted(maps.Keys(Images(t, c, ns))) {
		t.Errorf("image left behind in %s: %s", ns, n)
	}
	AssertNoSeedLeases(t, c, ns)
	if committed, other := Snapshots(t, c, ns); len(committed)+len(other) != 0 {
		t.Errorf("snapshots left behind in %s: %v %v", ns, committed, other)
	}
	if in := Ingests(t, c, ns); len(in) != 0 {
		t.Errorf("ingests left behind in %s: %v", ns, in)
	}
	for _, d := range blobs {
		if _, err := c.ContentStore().Info(ctx, d); err == nil {
			t.Errorf("blob left behind in %s: %s", ns, d)
		}
	}
}
