package fetcher

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startRegistry runs a registry holding root (and its blobs) as library/demo:1.0.
func startRegistry(t *testing.T, opts testregistry.Options, root ocispec.Descriptor, blobs map[digest.Digest][]byte) *testregistry.Registry {
	t.Helper()
	reg := testregistry.Start(t, opts)
	if err := reg.Push(context.Background(), "library/demo", "1.0", root, blobs); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	return reg
}

// registryResolver never reads the developer's ~/.docker/config.json.
func registryResolver(t *testing.T, o RegistryOptions) remotes.Resolver {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r, err := NewRegistryResolver(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fetchTree fetches root and everything below it through r, checks every
// blob against want, and returns the size of each distinct blob fetched.
// fetched is what fetchTree read: each blob's size and where it came
// from (OriginOf its reader).
type fetched map[digest.Digest]struct {
	size   int64
	origin Origin
}

// bytes totals the sizes of the blobs from origin ("": all).
func (f fetched) bytes(origin Origin) (n int64) {
	for _, b := range f {
		if origin == "" || b.origin == origin {
			n += b.size
		}
	}
	return n
}

func fetchTree(t *testing.T, r *Resolver, ref string, root ocispec.Descriptor, want map[digest.Digest][]byte) fetched {
	t.Helper()
	fe, err := r.Fetcher(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	got := fetched{}
	var walk func(ocispec.Descriptor)
	walk = func(desc ocispec.Descriptor) {
		rc, err := fe.Fetch(context.Background(), desc)
		if err != nil {
			t.Fatalf("fetch %s: %v", desc.Digest, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", desc.Digest, err)
		}
		if w, ok := want[desc.Digest]; !ok || !bytes.Equal(b, w) {
			t.Fatalf("%s %s: fetched %d bytes, want %d (known %v)", desc.MediaType, desc.Digest, len(b), len(w), ok)
		}
		got[desc.Digest] = struct {
			size   int64
			origin Origin
		}{desc.Size, OriginOf(rc)}
		if !images.IsIndexType(desc.MediaType) && !images.IsManifestType(desc.MediaType) {
			return
		}
		var doc struct {
			Manifests []ocispec.Descriptor
			Config    *ocispec.Descriptor
			Layers    []ocispec.Descriptor
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		kids := append(doc.Manifests, doc.Layers...)
		if doc.Config != nil {
			kids = append(kids, *doc.Config)
		}
		for _, k := range kids {
			walk(k)
		}
	}
	walk(root)
	return got
}

func resolve(t *testing.T, r remotes.Resolver, ref string, want digest.Digest) ocispec.Descriptor {
	t.Helper()
	_, desc, err := r.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	if desc.Digest != want {
		t.Fatalf("resolve %s: %s, want %s", ref, desc.Digest, want)
	}
	return desc
}

func TestRegistryOnly(t *testing.T) {
	f := newFixture(t)
	reg := startRegistry(t, testregistry.Options{}, f.multi, f.blobs)
	r := NewResolver(nil, registryResolver(t, RegistryOptions{PlainHTTP: true}))
	ref := reg.Host + "/library/demo:1.0"
	desc := resolve(t, r, ref, f.multi.Digest)
	got := fetchTree(t, r, ref, desc, f.blobs)
	// index, two manifests, two configs, three layers each
	if len(got) != 1+2+2+6 {
		t.Fatalf("fetched %d blobs, want 11", len(got))
	}
	if seed, remote := got.bytes(OriginSeed), got.bytes(OriginRegistry); seed != 0 || remote != got.bytes("") {
		t.Fatalf("%d bytes from seed, %d from registry; want 0, %d", seed, remote, got.bytes(""))
	}
	gets := reg.BlobGets()
	for _, k := range f.kids {
		for _, d := range append([]ocispec.Descriptor{k.Config}, k.Layers...) {
			if !slices.Contains(gets, d.Digest) {
				t.Errorf("registry never served %s (%s)", d.Digest, d.MediaType)
			}
		}
	}
}

func TestRegistryFallbackPartialSeed(t *testing.T) {
	full := build(t, testseed.Standard("", amd64, false, testseed.Gzip))
	// Another image sharing the first two layers of full, but not its third
	// layer, config or manifest; and named differently (tag too).
	img := testseed.Standard("", amd64, false, testseed.Gzip)
	img.Layers = img.Layers[:2]
	part := build(t, img)
	if part.Layers[0].Digest != full.Layers[0].Digest || part.Layers[1].Digest != full.Layers[1].Digest {
		t.Fatal("fixture: images do not share their first two layers")
	}
	var s testseed.Seed
	s.Add("docker.io/library/other:2.0", part.Manifest, part.Blobs)
	seed := openSeed(t, writeCompressed(t, t.TempDir(), "oci-tar", s.WriteOCITar))

	reg := startRegistry(t, testregistry.Options{}, full.Manifest, full.Blobs)
	r := NewResolver(Seeds{seed}, registryResolver(t, RegistryOptions{PlainHTTP: true}))
	ref := reg.Host + "/library/demo:1.0"
	desc := resolve(t, r, ref, full.Manifest.Digest)
	got := fetchTree(t, r, ref, desc, full.Blobs)
	if len(got) != 5 {
		t.Fatalf("fetched %d blobs, want manifest, config and 3 layers", len(got))
	}

	gets := reg.BlobGets()
	slices.Sort(gets)
	want := []digest.Digest{full.Config.Digest, full.Layers[2].Digest}
	slices.Sort(want)
	if !slices.Equal(gets, want) {
		t.Fatalf("registry blob GETs %v, want only the config and third layer %v", gets, want)
	}
	wantSeed := full.Layers[0].Size + full.Layers[1].Size
	wantRemote := full.Manifest.Size + full.Config.Size + full.Layers[2].Size
	if fromSeed, remote := got.bytes(OriginSeed), got.bytes(OriginRegistry); fromSeed != wantSeed || remote != wantRemote {
		t.Fatalf("%d bytes from seed, %d from registry; want %d, %d", fromSeed, remote, wantSeed, wantRemote)
	}
}

// noRegistry fails the test if a fully seeded pull touches the registry.
type noRegistry struct{ t *testing.T }

func (n noRegistry) Resolve(_ context.Context, ref string) (string, ocispec.Descriptor, error) {
	n.t.Errorf("registry asked to resolve %s", ref)
	return "", ocispec.Descriptor{}, errdefs.ErrUnavailable
}

func (n noRegistry) Fetcher(_ context.Context, ref string) (remotes.Fetcher, error) {
	n.t.Errorf("registry asked for a fetcher for %s", ref)
	return nil, errdefs.ErrUnavailable
}

func (n noRegistry) Pusher(context.Context, string) (remotes.Pusher, error) {
	return nil, errdefs.ErrNotImplemented
}

func TestRegistryOfflineFullySeeded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	seeds := Seeds{openSeed(t, f.write(t, "oci-tar"))}
	for _, name := range []string{"offline", "unreachable"} {
		t.Run(name, func(t *testing.T) {
			var remote remotes.Resolver // offline
			if name == "unreachable" {
				remote = noRegistry{t}
			}
			r := NewResolver(seeds, remote)
			for _, tc := range []struct {
				ref  string
				root ocispec.Descriptor
			}{{"registry.local/multi:2", f.multi}, {"demo:1.0", f.demo.Manifest}} {
				desc := resolve(t, r, tc.ref, tc.root.Digest)
				got := fetchTree(t, r, tc.ref, desc, f.blobs)
				if fromSeed, remote := got.bytes(OriginSeed), got.bytes(OriginRegistry); fromSeed != got.bytes("") || remote != 0 {
					t.Fatalf("%s: %d bytes from seed, %d from registry; want %d, 0", tc.ref, fromSeed, remote, got.bytes(""))
				}
			}
		})
	}
	r := NewResolver(seeds, nil)
	_, _, err := r.Resolve(ctx, "docker.io/library/absent:9.9")
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("offline resolve of an absent image: %v, want not found (offline)", err)
	}
	fe, _ := r.Fetcher(ctx, "docker.io/library/absent:9.9")
	_, err = fe.Fetch(ctx, ocispec.Descriptor{Digest: digest.FromString("absent"), Size: 6})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("offline fetch of an absent blob: %v, want not found (offline)", err)
	}
}

func TestRegistryAuth(t *testing.T) {
	b := build(t, testseed.Standard("", amd64, false, testseed.Zstd))
	reg := startRegistry(t, testregistry.Options{User: "user", Password: "pass"}, b.Manifest, b.Blobs)
	ref := reg.Host + "/library/demo:1.0"
	dockerConfig := func(auths string) string {
		return testutil.WriteFile(t, filepath.Join(t.TempDir(), "config.json"), []byte(`{"auths":{`+auths+`}}`))
	}
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	for _, tc := range []struct {
		name string
		o    RegistryOptions
		ok   bool
	}{
		{"user", RegistryOptions{User: "user:pass"}, true},
		{"wrong password", RegistryOptions{User: "user:nope"}, false},
		{"no credentials", RegistryOptions{}, false},
		{"config auth", RegistryOptions{DockerConfig: dockerConfig(fmt.Sprintf(`%q:{"auth":%q}`, reg.Host, auth))}, true},
		{"config url key", RegistryOptions{DockerConfig: dockerConfig(fmt.Sprintf(`"http://%s/v2/":{"username":"user","password":"pass"}`, reg.Host))}, true},
		{"config other host", RegistryOptions{DockerConfig: dockerConfig(fmt.Sprintf(`"registry.example:5000":{"auth":%q}`, auth))}, false},
		{"config wrong password", RegistryOptions{DockerConfig: dockerConfig(fmt.Sprintf(`%q:{"auth":%q}`, reg.Host, base64.StdEncoding.EncodeToString([]byte("user:nope"))))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.PlainHTTP = true
			r := NewResolver(nil, registryResolver(t, tc.o))
			_, desc, err := r.Resolve(context.Background(), ref)
			if !tc.ok {
				if err == nil {
					t.Fatal("resolve succeeded without valid credentials")
				}
				if !errors.Is(err, docker.ErrInvalidAuthorization) && !errdefs.IsUnauthorized(err) && !strings.Contains(err.Error(), "401") {
					t.Fatalf("resolve failed, but not for want of credentials: %v", err)
				}
				return
			}
			if err != nil || desc.Digest != b.Manifest.Digest {
				t.Fatalf("resolve: %v %v", desc.Digest, err)
			}
			// Blob GETs need the credentials too.
			if got := fetchTree(t, r, ref, desc, b.Blobs); len(got) != 5 {
				t.Fatalf("fetched %d blobs, want 5", len(got))
			}
		})
	}
}

func TestRegistryHostsDir(t *testing.T) {
	b := build(t, testseed.Standard("", arm64, true, testseed.Gzip))
	reg := startRegistry(t, testregistry.Options{}, b.Manifest, b.Blobs)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mirror.invalid"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(dir, "mirror.invalid", "hosts.toml"), fmt.Appendf(nil,
		"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.URL(), reg.URL()))

	// No PlainHTTP: hosts.toml alone says where and how to connect.
	r := NewResolver(nil, registryResolver(t, RegistryOptions{HostsDir: dir}))
	ref := "mirror.invalid/library/demo:1.0"
	desc := resolve(t, r, ref, b.Manifest.Digest)
	if got := fetchTree(t, r, ref, desc, b.Blobs); len(got) != 5 {
		t.Fatalf("fetched %d blobs, want 5", len(got))
	}
	var resolved bool
	for _, req := range reg.Requests() {
		resolved = resolved || req.Path == "/v2/library/demo/manifests/1.0" && req.Status == 200
	}
	if !resolved {
		t.Fatalf("the loopback registry never answered the tag: %v", reg.Requests())
	}
	if gets := reg.BlobGets(); !slices.Contains(gets, b.Layers[0].Digest) {
		t.Fatalf("layer %s was not fetched from the loopback registry: %v", b.Layers[0].Digest, gets)
	}

}
