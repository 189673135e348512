package test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A seed holding the whole image needs no registry: with --offline none is
// contacted, and without it the seed still wins, so none is contacted
// either.
func TestPullFullySeeded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		registry bool   // run a registry holding the same image under the same name
		offline  bool   // --offline
		seedName string // the seed entry's name; "" means the registry name
		ref      string // what is pulled; "" means the seed entry's name
		want     string // the recorded name; "" means ref
	}{
		{name: "offline", offline: true, seedName: "registry.invalid/library/app:1"},
		{name: "offline-short-name", offline: true, seedName: "docker.io/library/seeded-app:1", ref: "seeded-app:1", want: "docker.io/library/seeded-app:1"},
		{name: "offline-registry-up", registry: true, offline: true},
		{name: "online-registry-up", registry: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := pullFresh(t, "app", amd64, testseed.Gzip)
			var reg *testregistry.Registry
			if tc.registry {
				reg = pullRegistry(t, testregistry.Options{}, "library/app", "1", b.Manifest, b.Blobs)
			}
			seedName := tc.seedName
			if seedName == "" {
				seedName = reg.Host + "/library/app:1"
			}
			ref := pullOr(tc.ref, seedName)
			var s testseed.Seed
			s.Add(seedName, b.Manifest, b.Blobs)
			seed := writeOCI(t, &s, testseed.Uncompressed)

			args := []string{"--seed", seed}
			if tc.offline {
				args = append(args, "--offline")
			}
			if tc.registry {
				args = append(args, "--plain-http")
			}
			r := mustPull(t, ns, append(args, ref)...)
			name := pullOr(tc.want, ref)
			checkPullOutput(t, r, name, b.Manifest.Digest, pullBlobs(b), nil)
			checkPulled(t, ns, name, b.Manifest, b, true)
			if reg != nil {
				if reqs := reg.Requests(); len(reqs) != 0 {
					t.Errorf("a fully seeded pull contacted the registry: %v", reqs)
				}
			}
		})
	}
}

func pullOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Offline, what no seed holds is an error naming offline, and a failed
// image leaves nothing: no record, no lease, no snapshot, no blob.
func TestPullOfflineMissing(t *testing.T) {
	t.Run("ref-not-in-seed", func(t *testing.T) {
		ns := namespace(t)
		b := pullFresh(t, "app", amd64, testseed.Gzip)
		var s testseed.Seed
		s.Add("registry.invalid/library/app:1", b.Manifest, b.Blobs)
		seed := writeOCI(t, &s, testseed.Uncompressed)
		ref := "registry.invalid/library/absent:1"
		r := pullRun(t, ns, "--offline", "--seed", seed, ref)
		pullFailed(t, r, 1, []string{ref}, "offline", "not in any seed")
		if r.stdout != "" {
			t.Errorf("stdout: %s", r.stdout)
		}
		assertNothingLeft(t, ns)
		pullNoContent(t, ns, pullBlobs(b)...)
	})
	t.Run("no-seed", func(t *testing.T) {
		ns := namespace(t)
		ref := "registry.invalid/library/app:1"
		r := pullRun(t, ns, "--offline", ref)
		pullFailed(t, r, 1, []string{ref}, "offline")
		assertNothingLeft(t, ns)
	})
	t.Run("layer-not-in-seed", func(t *testing.T) {
		// The manifest, config and lower layers are in the seed, so they
		// are written and unpacked before the top layer is found missing:
		// all of it must go.
		ns := namespace(t)
		b := pullFresh(t, "app", amd64, testseed.Gzip)
		top := b.Layers[len(b.Layers)-1]
		var s testseed.Seed
		ref := "registry.invalid/library/app:1"
		s.Add(ref, b.Manifest, b.Blobs)
		delete(s.Blobs, top.Digest)
		seed := writeOCI(t, &s, testseed.Uncompressed)
		r := pullRun(t, ns, "--offline", "--seed", seed, ref)
		pullFailed(t, r, 1, []string{ref}, "offline", top.Digest.String())
		if strings.Contains(r.stdout, "imported") {
			t.Errorf("stdout: %s", r.stdout)
		}
		assertNothingLeft(t, ns)
		pullNoContent(t, ns, pullBlobs(b)...)
	})
	t.Run("one-good-one-bad", func(t *testing.T) {
		ns := namespace(t)
		b := pullFresh(t, "app", amd64, testseed.Zstd)
		var s testseed.Seed
		good, bad := "registry.invalid/library/app:1", "registry.invalid/library/app:2"
		s.Add(good, b.Manifest, b.Blobs)
		seed := writeOCI(t, &s, testseed.Gzip)
		r := pullRun(t, ns, "--offline", "--seed", seed, good, bad)
		pullFailed(t, r, 2, []string{bad}, "offline")
		checkPullOutput(t, r, good, b.Manifest.Digest, pullBlobs(b), nil)
		checkPulled(t, ns, good, b.Manifest, b, true)
	})
}

// The registry holds the image, the seed some of its blobs: the registry
// serves exactly the blobs no seed holds.
func TestPullPartialSeed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// seed returns the seed's entries and blobs for x, and the blobs of
		// x it holds.
		seed func(t *testing.T, x testseed.Image, xb *testseed.Built) (*testseed.Seed, []ocispec.Descriptor)
	}{
		{"other-image-shares-lower-layers", func(t *testing.T, x testseed.Image, xb *testseed.Built) (*testseed.Seed, []ocispec.Descriptor) {
			y := x
			y.Layers = x.Layers[:2]
			yb := testutil.Build(t, y)
			if yb.Layers[0].Digest != xb.Layers[0].Digest || yb.Layers[1].Digest != xb.Layers[1].Digest || yb.Config.Digest == xb.Config.Digest {
				t.Fatal("fixture: the images do not share exactly their first two layers")
			}
			var s testseed.Seed
			s.Add("registry.local/library/other:2", yb.Manifest, yb.Blobs)
			return &s, xb.Layers[:2]
		}},
		{"layers-without-manifest-or-config", func(t *testing.T, x testseed.Image, xb *testseed.Built) (*testseed.Seed, []ocispec.Descriptor) {
			// Bare blobs, as a cache of layers: no index entry at all.
			s := testseed.Seed{Blobs: map[digestKey][]byte{}}
			for _, l := range xb.Layers {
				s.Blobs[l.Digest] = xb.Blobs[l.Digest]
			}
			return &s, xb.Layers
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			x := pullImage(t, "x", amd64, false, testseed.Gzip)
			xb := testutil.Build(t, x)
			s, held := tc.seed(t, x, xb)
			seed := writeOCI(t, s, testseed.Uncompressed)
			var lacking []ocispec.Descriptor
			for _, d := range pullBlobs(xb) {
				if !slices.ContainsFunc(held, func(h ocispec.Descriptor) bool { return h.Digest == d.Digest }) {
					lacking = append(lacking, d)
				}
			}
			reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", xb.Manifest, xb.Blobs)
			ref := reg.Host + "/library/app:1"

			r := mustPull(t, ns, "--plain-http", "--seed", seed, ref)
			// The manifest comes from /manifests/, the rest from /blobs/.
			pullBlobGets(t, reg, lacking[1:], held)
			if !pullSaw(reg, http.MethodGet, "/v2/library/app/manifests/"+xb.Manifest.Digest.String(), http.StatusOK) &&
				!pullSaw(reg, http.MethodGet, "/v2/library/app/manifests/1", http.StatusOK) {
				t.Errorf("the registry never served the manifest: %v", reg.Requests())
			}
			checkPullOutput(t, r, ref, xb.Manifest.Digest, held, lacking)
			if pullSize(held...) == 0 || pullSize(lacking...) == 0 {
				t.Fatal("fixture: nothing from seed or nothing from registry")
			}
			checkPulled(t, ns, ref, xb.Manifest, xb, true)
		})
	}
}

// Without a seed, pull is a plain registry pull.
func TestPullRegistryOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		docker bool
		c      testseed.Compression
		flags  []string
	}{
		{"oci-gzip", false, testseed.Gzip, nil},
		{"oci-zstd", false, testseed.Zstd, nil},
		{"docker-gzip", true, testseed.Gzip, nil},
		{"no-unpack", false, testseed.Gzip, []string{"--no-unpack"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := testutil.Build(t, pullImage(t, "app", amd64, tc.docker, tc.c))
			reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", b.Manifest, b.Blobs)
			ref := reg.Host + "/library/app:1"
			r := mustPull(t, ns, append(append([]string{"--plain-http"}, tc.flags...), ref)...)
			pullBlobGets(t, reg, pullBlobs(b)[1:], nil)
			checkPullOutput(t, r, ref, b.Manifest.Digest, nil, pullBlobs(b))
			root := b.Manifest
			root.Platform = nil
			checkPulled(t, ns, ref, root, b, !slices.Contains(tc.flags, "--no-unpack"))
		})
	}
}

// ctr images pull and ctr-seed pull (with a seed holding part of the image)
// leave the same image record and the same snapshots.
func TestPullParityWithCtr(t *testing.T) {
	for _, tc := range []struct {
		name     string
		index    bool
		platform string
	}{
		{"manifest", false, ""},
		{"index-host-platform", true, ""},
		{"index-arm64", true, "linux/arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var root ocispec.Descriptor
			var blobs map[digestKey][]byte
			var want *testseed.Built // the platform's image
			if tc.index {
				var a, b *testseed.Built
				root, blobs, a, b = pullIndex(t, "app")
				want = a
				if tc.platform != "" {
					want = b
				}
			} else {
				want = pullFresh(t, "app", amd64, testseed.Gzip)
				root, blobs = want.Manifest, want.Blobs
				root.Platform = nil
			}
			// The seed holds the lower two layers of the pulled platform.
			s := testseed.Seed{Blobs: map[digestKey][]byte{}}
			for _, l := range want.Layers[:2] {
				s.Blobs[l.Digest] = want.Blobs[l.Digest]
			}
			seed := writeOCI(t, &s, testseed.Uncompressed)
			reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", root, blobs)
			ref := reg.Host + "/library/app:1"
			var pf []string
			if tc.platform != "" {
				pf = []string{"--platform", tc.platform}
			}

			// ctr-seed first: after ctr, every blob would be in the daemon.
			nsSeed, nsCtr := namespace(t)+"-seed", namespace(t)+"-ctr"
			r := mustPull(t, nsSeed, append(append([]string{"--plain-http", "--seed", seed}, pf...), ref)...)
			sums, _ := parsePullOutput(t, r.stdout)
			if len(sums) != 1 || sums[0].fromSeed == "0 B" || sums[0].fromRegistry == "0 B" {
				t.Errorf("want bytes from both seed and registry: %+v", sums)
			}
			checkPulled(t, nsSeed, ref, root, want, true)
			ctr(t, nsCtr, append(append([]string{"images", "pull", "--plain-http"}, pf...), ref)...)

			got, ctrs := imageMap(t, nsSeed), imageMap(t, nsCtr)
			if !slices.Equal(keys(got), keys(ctrs)) {
				t.Fatalf("images: ctr-seed %v, ctr %v", keys(got), keys(ctrs))
			}
			g, w := got[ref].Target, ctrs[ref].Target
			if g.Digest != w.Digest || g.MediaType != w.MediaType || g.Size != w.Size {
				t.Errorf("target: ctr-seed %s %s %d, ctr %s %s %d", g.Digest, g.MediaType, g.Size, w.Digest, w.MediaType, w.Size)
			}
			sc, cc := snapshotChain(t, nsSeed), snapshotChain(t, nsCtr)
			if len(cc) == 0 || !slices.Equal(sc, cc) {
				t.Errorf("committed snapshots differ:\nctr-seed: %s\nctr:      %s", strings.Join(sc, "\n          "), strings.Join(cc, "\n          "))
			}
		})
	}
}

// A registry with basic auth: --user user:password is sent, a wrong one
// fails the image cleanly.
func TestPullBasicAuth(t *testing.T) {
	auth := testregistry.Options{User: "user", Password: "pass"}
	for _, tc := range []struct {
		name    string
		flags   []string
		mention string
	}{
		{"wrong-password", []string{"--user", "user:nope"}, "401 Unauthorized"},
		{"no-credentials", nil, "no basic auth credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := pullFresh(t, "app", amd64, testseed.Gzip)
			reg := pullRegistry(t, auth, "library/app", "1", b.Manifest, b.Blobs)
			ref := reg.Host + "/library/app:1"
			r := pullRun(t, ns, append(append([]string{"--plain-http"}, tc.flags...), ref)...)
			pullFailed(t, r, 1, []string{ref}, tc.mention)
			assertNothingLeft(t, ns)
			pullNoContent(t, ns, pullBlobs(b)...)
			if gets := reg.BlobGets(); len(gets) != 0 {
				t.Errorf("blobs served without valid credentials: %v", gets)
			}
			if !pullSaw(reg, http.MethodHead, "/v2/library/app/manifests/1", http.StatusUnauthorized) &&
				!pullSaw(reg, http.MethodGet, "/v2/library/app/manifests/1", http.StatusUnauthorized) {
				t.Errorf("the registry never refused the manifest: %v", reg.Requests())
			}
		})
	}
	t.Run("user-password", func(t *testing.T) {
		ns := namespace(t)
		b := pullFresh(t, "app", amd64, testseed.Gzip)
		reg := pullRegistry(t, auth, "library/app", "1", b.Manifest, b.Blobs)
		ref := reg.Host + "/library/app:1"
		r := mustPull(t, ns, "--plain-http", "--user", "user:pass", ref)
		pullBlobGets(t, reg, pullBlobs(b)[1:], nil)
		checkPullOutput(t, r, ref, b.Manifest.Digest, nil, pullBlobs(b))
		root := b.Manifest
		root.Platform = nil
		checkPulled(t, ns, ref, root, b, true)
	})
	t.Run("partial-seed", func(t *testing.T) {
		// The seed holds the manifest (by name), the config and the lower
		// layers: with a wrong password those are written and unpacked
		// before the top layer is refused, and must all go. The retry with
		// the right password then fetches them from the seed again (so
		// none stayed in the daemon) and only the top layer from the
		// registry.
		b := pullFresh(t, "app", amd64, testseed.Gzip)
		reg := pullRegistry(t, auth, "library/app", "1", b.Manifest, b.Blobs)
		ref := reg.Host + "/library/app:1"
		top := b.Layers[len(b.Layers)-1]
		var s testseed.Seed
		s.Add(ref, b.Manifest, b.Blobs)
		delete(s.Blobs, top.Digest)
		seed := writeOCI(t, &s, testseed.Uncompressed)

		nsBad, nsGood := namespace(t)+"-bad", namespace(t)+"-good"
		r := pullRun(t, nsBad, "--plain-http", "--seed", seed, "--user", "user:nope", ref)
		pullFailed(t, r, 1, []string{ref}, top.Digest.String(), "401")
		assertNothingLeft(t, nsBad)
		pullNoContent(t, nsBad, pullBlobs(b)...)
		if gets := reg.BlobGets(); len(gets) != 0 {
			t.Errorf("blobs served with a wrong password: %v", gets)
		}

		reg.Reset()
		r = mustPull(t, nsGood, "--plain-http", "--seed", seed, "--user", "user:pass", ref)
		held := pullBlobs(b)[:len(pullBlobs(b))-1]
		pullBlobGets(t, reg, []ocispec.Descriptor{top}, held)
		checkPullOutput(t, r, ref, b.Manifest.Digest, held, []ocispec.Descriptor{top})
		checkPulled(t, nsGood, ref, b.Manifest, b, true)
	})
}

// --hosts-dir: a hosts.toml sends a registry name to the loopback registry.
func TestPullHostsDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		host string // the hosts.toml directory
		ref  string // what is pulled
		want string // the recorded name
		tag  string // the tag the registry resolves
	}{
		{"mirror", "mirror.invalid", "mirror.invalid/library/app:1", "mirror.invalid/library/app:1", "1"},
		// Normalised as containerd does, as for references seeds hold.
		{"docker-io-short-name", "docker.io", "app:1", "docker.io/library/app:1", "1"},
		{"no-tag", "mirror.invalid", "mirror.invalid/library/app", "mirror.invalid/library/app:latest", "latest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			b := pullFresh(t, "app", amd64, testseed.Gzip)
			reg := pullRegistry(t, testregistry.Options{}, "library/app", tc.tag, b.Manifest, b.Blobs)
			dir := t.TempDir()
			pullHostsToml(t, dir, tc.host, reg)
			// No --plain-http: hosts.toml alone says where and how.
			r := pullRun(t, ns, "--hosts-dir", dir, tc.ref)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("ctr-seed pull %s: exit %d\nstdout: %s\nstderr: %s", tc.ref, r.code, r.stdout, r.stderr)
			}
			if !pullSaw(reg, http.MethodHead, "/v2/library/app/manifests/"+tc.tag, http.StatusOK) &&
				!pullSaw(reg, http.MethodGet, "/v2/library/app/manifests/"+tc.tag, http.StatusOK) {
				t.Errorf("the loopback registry never resolved the tag: %v", reg.Requests())
			}
			pullBlobGets(t, reg, pullBlobs(b)[1:], nil)
			checkPullOutput(t, r, tc.want, b.Manifest.Digest, nil, pullBlobs(b))
			root := b.Manifest
			root.Platform = nil
			checkPulled(t, ns, tc.want, root, b, true)
		})
	}
}

// A multi-platform index: only the chosen platform's blobs are fetched, and
// the index is the image's target.
func TestPullPlatform(t *testing.T) {
	for _, tc := range []struct {
		name     string
		platform string // --platform; "" means the host's (amd64)
	}{
		{"arm64", "linux/arm64"},
		{"host", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			idx, blobs, a, b := pullIndex(t, "app")
			want, other := a, b
			if tc.platform != "" {
				want, other = b, a
			}
			reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", idx, blobs)
			ref := reg.Host + "/library/app:1"
			args := []string{"--plain-http"}
			if tc.platform != "" {
				args = append(args, "--platform", tc.platform)
			}
			r := mustPull(t, ns, append(args, ref)...)
			pullBlobGets(t, reg, pullBlobs(want)[1:], pullBlobs(other))
			if !pullSaw(reg, http.MethodGet, "/v2/library/app/manifests/"+want.Manifest.Digest.String(), http.StatusOK) {
				t.Errorf("the registry never served the %s manifest: %v", tc.name, reg.Requests())
			}
			root := ocispec.Descriptor{MediaType: idx.MediaType, Digest: idx.Digest, Size: idx.Size}
			checkPullOutput(t, r, ref, idx.Digest, nil, append([]ocispec.Descriptor{root}, pullBlobs(want)...))
			checkPulled(t, ns, ref, root, want, true)
			pullNoContent(t, ns, pullBlobs(other)...)
		})
	}
}
