package importer

import (
	"context"
	"errors"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/procstat"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestSameLabels(t *testing.T) {
	have := map[string]string{"a": "1", "b": "2"}
	for _, tc := range []struct {
		name  string
		want  map[string]string
		paths []string
		same  bool
	}{
		{"all, equal", map[string]string{"a": "1", "b": "2"}, nil, true},
		{"all, one more", map[string]string{"a": "1", "b": "2", "c": "3"}, nil, false},
		{"all, one less", map[string]string{"a": "1"}, nil, false},
		{"labels, equal", map[string]string{"b": "2", "a": "1"}, []string{"labels"}, true},
		{"labels, other value", map[string]string{"a": "1", "b": "3"}, []string{"labels"}, false},
		{"one key, same", map[string]string{"a": "1"}, []string{"labels.a"}, true},
		{"one key, other value", map[string]string{"a": "9"}, []string{"labels.a"}, false},
		{"one key removed that is there", map[string]string{}, []string{"labels.a"}, false},
		{"one key removed that is not there", map[string]string{}, []string{"labels.z"}, true},
		{"one key added", map[string]string{"z": "1"}, []string{"labels.z"}, false},
		{"keys not asked for differ", map[string]string{"a": "1", "b": "other"}, []string{"labels.a"}, true},
		{"another field", map[string]string{"a": "1", "b": "2"}, []string{"target"}, false},
		{"a key and another field", map[string]string{"a": "1"}, []string{"labels.a", "name"}, false},
	} {
		if got := sameLabels(have, tc.want, tc.paths); got != tc.same {
			t.Errorf("%s: sameLabels(%v, %v, %q) = %v, want %v", tc.name, have, tc.want, tc.paths, got, tc.same)
		}
	}
	if !sameLabels(nil, map[string]string{}, nil) || !sameLabels(map[string]string{}, nil, []string{"labels"}) {
		t.Error("nil and empty labels differ; the stores keep them alike")
	}
}

func TestSameRecord(t *testing.T) {
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 10,
		Annotations: map[string]string{"k": "v"}}
	cur := images.Image{Name: "n", Target: target, Labels: map[string]string{"a": "1"}}
	with := func(f func(*images.Image)) images.Image {
		img := cur
		img.Target.Annotations = map[string]string{"k": "v"}
		img.Labels = map[string]string{"a": "1"}
		f(&img)
		return img
	}
	for _, tc := range []struct {
		name  string
		img   images.Image
		paths []string
		same  bool
	}{
		{"identical", with(func(*images.Image) {}), nil, true},
		{"other digest", with(func(i *images.Image) { i.Target.Digest = digest.FromString("x") }), nil, false},
		{"other media type", with(func(i *images.Image) { i.Target.MediaType = ocispec.MediaTypeImageIndex }), nil, false},
		{"other size", with(func(i *images.Image) { i.Target.Size = 11 }), nil, false},
		{"other annotations", with(func(i *images.Image) { i.Target.Annotations = nil }), nil, false},
		{"other labels", with(func(i *images.Image) { i.Labels["b"] = "2" }), nil, false},
		{"labels only, same", with(func(i *images.Image) { i.Target.Digest = digest.FromString("x") }), []string{"labels.a"}, true},
		{"labels only, other", with(func(i *images.Image) { i.Labels["a"] = "2" }), []string{"labels.a"}, false},
		{"the target asked for", with(func(*images.Image) {}), []string{"target"}, false},
	} {
		if got := sameRecord(cur, tc.img, tc.paths); got != tc.same {
			t.Errorf("%s: sameRecord = %v, want %v", tc.name, got, tc.same)
		}
	}
}

// Every service that can change anything is wrapped by the read-only
// pass: a field added to Services and not wrapped fails here.
func TestReadOnlyWrapsEveryService(t *testing.T) {
	s := newStores(t)
	svc := s.svc
	svc.Introspection = rebaseIntrospection{}
	svc.Limiter = NewLimiter(1, 1)
	ro := svc.readOnly()
	v, rv := reflect.ValueOf(svc), reflect.ValueOf(ro)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if v.Field(i).IsNil() {
			t.Errorf("Services.%s is nil in this test: give it one", name)
			continue
		}
		var got any
		switch name {
		case "Introspection", "Limiter":
			continue // reads only; shared as it is
		case "Snapshotter":
			got = ro.Snapshotter(s.sn)
			if ro.Snapshotter("nonesuch") != nil {
				t.Errorf("the read-only pass has a snapshotter the services lack")
			}
		default:
			got = rv.Field(i).Interface()
		}
		if typ := reflect.TypeOf(got).String(); !strings.HasPrefix(strings.TrimPrefix(typ, "*"), "importer.ro") {
			t.Errorf("Services.%s in the read-only pass is %s, not a read-only wrapper", name, typ)
		}
	}
}

// The read-only pass answers a change that would change nothing as if
// made, and refuses any other, on containerd's own stores.
func TestReadOnlyStores(t *testing.T) {
	s := newStores(t)
	ctx := nsCtx("default")
	blob := []byte("a blob")
	d := digest.FromBytes(blob)
	if err := content.WriteBlob(ctx, s.svc.Content, "ref", strings.NewReader(string(blob)),
		ocispec.Descriptor{Digest: d, Size: int64(len(blob))}, content.WithLabels(map[string]string{"l": "1"})); err != nil {
		t.Fatal(err)
	}
	img := images.Image{Name: "example.com/a:1", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(blob))}}
	if _, err := s.svc.Images.Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	ro := s.svc.readOnly()
	would := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errWouldWrite) {
			t.Errorf("%s: %v; want it refused (would write)", what, err)
		}
	}
	exists := func(what string, err error) {
		t.Helper()
		if !errdefs.IsAlreadyExists(err) {
			t.Errorf("%s: %v; want already exists", what, err)
		}
	}

	_, err := ro.Content.Writer(ctx, content.WithRef("r"), content.WithDescriptor(ocispec.Descriptor{Digest: d, Size: int64(len(blob))}))
	exists("a writer of a blob the store has", err)
	_, err = ro.Content.Writer(ctx, content.WithRef("r"), content.WithDescriptor(ocispec.Descriptor{Digest: d, Size: 99}))
	would("a writer of a blob the store has with another size", err)
	_, err = ro.Content.Writer(ctx, content.WithRef("r"), content.WithDescriptor(ocispec.Descriptor{Digest: digest.FromString("new"), Size: 3}))
	would("a writer of a new blob", err)
	if _, err := ro.Content.Update(ctx, content.Info{Digest: d, Labels: map[string]string{"l": "1"}}, "labels.l"); err != nil {
		t.Errorf("a label update that changes nothing: %v", err)
	}
	_, err = ro.Content.Update(ctx, content.Info{Digest: d, Labels: map[string]string{"l": "2"}}, "labels.l")
	would("a label update", err)
	would("delete", ro.Content.Delete(ctx, d))
	would("abort", ro.Content.Abort(ctx, "ref"))
	if ra, err := ro.Content.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: int64(len(blob))}); err != nil {
		t.Errorf("reading through the read-only pass: %v", err)
	} else {
		ra.Close()
	}

	_, err = ro.Images.Create(ctx, img)
	exists("creating a record that exists", err)
	_, err = ro.Images.Create(ctx, images.Image{Name: "example.com/new:1", Target: img.Target})
	would("creating a record", err)
	if _, err := ro.Images.Update(ctx, img); err != nil {
		t.Errorf("an update that changes nothing: %v", err)
	}
	changed := img
	changed.Labels = map[string]string{"x": "y"}
	_, err = ro.Images.Update(ctx, changed)
	would("an update of the labels", err)
	would("deleting a record", ro.Images.Delete(ctx, img.Name))

	sn := ro.Snapshotter(s.sn)
	_, err = sn.Prepare(ctx, "k", "")
	would("preparing a snapshot with no target", err)
	_, err = sn.Prepare(ctx, "k", "", snapshots.WithLabels(map[string]string{snapshots.LabelSnapshotRef: "sha256:none"}))
	would("preparing a snapshot whose target is not there", err)
	_, err = sn.View(ctx, "v", "")
	would("a view", err)
	would("a commit", sn.Commit(ctx, "c", "k"))
	would("a removal", sn.Remove(ctx, "k"))

	_, err = ro.Leases.Create(ctx)
	would("a lease", err)
	would("a lease deleted", ro.Leases.Delete(ctx, leases.Lease{ID: "x"}))
	_, err = ro.Applier.Apply(ctx, ocispec.Descriptor{}, nil)
	would("an apply", err)
	would("a namespace made", ro.Namespaces.Create(ctx, "new", nil))
	if nss, err := ro.Namespaces.List(ctx); err != nil || len(nss) == 0 {
		t.Errorf("listing namespaces through the read-only pass: %v %v", nss, err)
	}

	// Nothing of it reached the stores.
	if _, err := s.svc.Images.Get(ctx, "example.com/new:1"); !errdefs.IsNotFound(err) {
		t.Errorf("a record was made: %v", err)
	}
	if info, err := s.svc.Content.Info(ctx, d); err != nil || info.Labels["l"] != "1" {
		t.Errorf("the blob changed: %+v %v", info, err)
	}
}

// An import drops the leases of killed imports, in every namespace, and
// keeps those of live ones.
func TestImportDropsKilledImportsLeases(t *testing.T) {
	s := newStores(t)
	self := procstat.Owner()
	parts := strings.Split(self, ":")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strings.Join([]string{parts[0], parts[1], strconv.Itoa(cmd.Process.Pid), parts[3]}, ":")
	other := nsCtx("elsewhere")
	mk := func(owner string) leases.Lease {
		l, err := s.svc.Leases.Create(other, leases.WithRandomID(), leases.WithLabel(LeaseLabel, "x"), leases.WithLabel(leaseOwner, owner))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	killed, live := mk(dead), mk(self)
	im := s.importer(t, Options{})
	l := im.newRunLease(nsCtx("default"))
	if err := l.end(nsCtx("default")); err != nil {
		t.Fatal(err)
	}
	got, err := s.svc.Leases.List(other)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, l := range got {
		ids[l.ID] = true
	}
	if ids[killed.ID] || !ids[live.ID] {
		t.Errorf("leases left %v: want the killed import's (%s) gone, the live one's (%s) kept", ids, killed.ID, live.ID)
	}
}

// rebaseIntrospection answers that the snapshotter can rebase, as the overlay
// plugin says where it can.
type rebaseIntrospection struct{}

func (rebaseIntrospection) Plugins(context.Context, ...string) (*introspectionapi.PluginsResponse, error) {
	return &introspectionapi.PluginsResponse{Plugins: []*introspectionapi.Plugin{{Capabilities: []string{snapshots.RebaseCap}}}}, nil
}

func (rebaseIntrospection) Server(context.Context) (*introspectionapi.ServerResponse, error) {
	return &introspectionapi.ServerResponse{}, nil
}

func (rebaseIntrospection) PluginInfo(context.Context, string, string, any) (*introspectionapi.PluginInfoResponse, error) {
	return &introspectionapi.PluginInfoResponse{}, nil
}
