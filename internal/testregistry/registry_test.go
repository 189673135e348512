package testregistry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type image struct {
	root   ocispec.Descriptor
	layer  ocispec.Descriptor
	blobs  map[digest.Digest][]byte
	config []byte
}

func blob(mediaType string, data []byte, blobs map[digest.Digest][]byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	blobs[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyImage builds a config blob, one layer and an OCI manifest.
func tinyImage(t *testing.T) image {
	blobs := map[digest.Digest][]byte{}
	cfg := mustJSON(t, ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("layer")}},
	})
	config := blob(ocispec.MediaTypeImageConfig, cfg, blobs)
	layer := blob(ocispec.MediaTypeImageLayer, []byte("layer"), blobs)
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{layer},
	}
	root := blob(ocispec.MediaTypeImageManifest, mustJSON(t, m), blobs)
	return image{root: root, layer: layer, blobs: blobs, config: cfg}
}

func get(t *testing.T, url, user, pass string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestRegistry(t *testing.T) {
	for _, tc := range []struct {
		name       string
		user, pass string
	}{
		{name: "anonymous"},
		{name: "auth", user: "alice", pass: "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Start(t, Options{User: tc.user, Password: tc.pass})
			img := tinyImage(t)
			if err := r.Push(context.Background(), "library/demo", "v1", img.root, img.blobs); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if len(r.Requests()) == 0 {
				t.Fatal("no requests logged after push")
			}
			r.Reset()
			if reqs := r.Requests(); len(reqs) != 0 {
				t.Fatalf("Requests after Reset = %v", reqs)
			}

			base := r.URL() + "/v2/library/demo"
			status, body := get(t, base+"/manifests/v1", tc.user, tc.pass)
			if status != http.StatusOK || digest.FromBytes(body) != img.root.Digest {
				t.Fatalf("GET manifest: status %d, digest %s, want 200 %s", status, digest.FromBytes(body), img.root.Digest)
			}
			if tc.user != "" {
				if status, _ := get(t, base+"/manifests/v1", "", ""); status != http.StatusUnauthorized {
					t.Fatalf("GET manifest without credentials: status %d, want 401", status)
				}
				if status, _ := get(t, base+"/manifests/v1", tc.user, "wrong"); status != http.StatusUnauthorized {
					t.Fatalf("GET manifest with wrong password: status %d, want 401", status)
				}
			}
			if got := r.BlobGets(); len(got) != 0 {
				t.Fatalf("BlobGets before blob fetch = %v", got)
			}

			status, body = get(t, base+"/blobs/"+img.layer.Digest.String(), tc.user, tc.pass)
			if status != http.StatusOK || string(body) != "layer" {
				t.Fatalf("GET layer: status %d body %q", status, body)
			}
			// A missing blob is logged but is not a successful blob GET.
			missing := digest.FromString("missing")
			if status, _ := get(t, base+"/blobs/"+missing.String(), tc.user, tc.pass); status != http.StatusNotFound {
				t.Fatalf("GET missing blob: status %d, want 404", status)
			}
			if got, want := r.BlobGets(), []digest.Digest{img.layer.Digest}; !slices.Equal(got, want) {
				t.Fatalf("BlobGets = %v, want %v", got, want)
			}
			want := Request{Method: http.MethodGet, Path: "/v2/library/demo/blobs/" + missing.String(), Status: http.StatusNotFound}
			if reqs := r.Requests(); reqs[len(reqs)-1] != want {
				t.Fatalf("last request = %+v, want %+v", reqs[len(reqs)-1], want)
			}
		})
	}
}

func TestPushIndex(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{})
	img := tinyImage(t)
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{img.root},
	}
	root := blob(ocispec.MediaTypeImageIndex, mustJSON(t, idx), img.blobs)
	if err := r.Push(context.Background(), "demo/index", "latest", root, img.blobs); err != nil {
		t.Fatalf("Push index: %v", err)
	}
	status, _ := get(t, r.URL()+"/v2/demo/index/manifests/"+img.root.Digest.String(), "", "")
	if status != http.StatusOK {
		t.Fatalf("GET child manifest: status %d", status)
	}
}
