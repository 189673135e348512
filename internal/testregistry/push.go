package testregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	dockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// Push uploads root and everything it references to repo (e.g.
// "library/demo") through the registry's v2 HTTP API, then tags root as tag.
//
// blobs maps digest -> content and must hold every blob reachable from root,
// including root itself and any child manifests. Blobs are uploaded before
// the manifests that reference them, child manifests before their index, and
// root last (by tag). Children are pushed by digest. Unreferenced entries in
// blobs are ignored. Credentials from Options are sent when set.
func (r *Registry) Push(ctx context.Context, repo, tag string, root ocispec.Descriptor, blobs map[digest.Digest][]byte) error {
	p := &pusher{r: r, repo: repo, blobs: blobs, done: map[digest.Digest]bool{}}
	return p.push(ctx, root, tag)
}

type pusher struct {
	r     *Registry
	repo  string
	blobs map[digest.Digest][]byte
	done  map[digest.Digest]bool
}

// push uploads desc after its children. ref is the manifest reference to
// PUT to; it defaults to the digest.
func (p *pusher) push(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	data, ok := p.blobs[desc.Digest]
	if !ok {
		return fmt.Errorf("testregistry: push %s: blob %s (%s) not in blobs map", p.repo, desc.Digest, desc.MediaType)
	}
	if got := digest.FromBytes(data); got != desc.Digest {
		return fmt.Errorf("testregistry: push %s: blob %s has content digest %s", p.repo, desc.Digest, got)
	}
	if p.done[desc.Digest] && ref == "" {
		return nil
	}
	p.done[desc.Digest] = true

	var children []ocispec.Descriptor
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, dockerManifestList:
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("testregistry: decode index %s: %w", desc.Digest, err)
		}
		children = idx.Manifests
	case ocispec.MediaTypeImageManifest, dockerManifest:
		var m ocispec.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("testregistry: decode manifest %s: %w", desc.Digest, err)
		}
		children = append([]ocispec.Descriptor{m.Config}, m.Layers...)
	default:
		if ref != "" {
			return fmt.Errorf("testregistry: push %s: root media type %q is not a manifest or index", p.repo, desc.MediaType)
		}
		return p.putBlob(ctx, desc.Digest, data)
	}
	for _, c := range children {
		if err := p.push(ctx, c, ""); err != nil {
			return err
		}
	}
	if ref == "" {
		ref = desc.Digest.String()
	}
	return p.putManifest(ctx, ref, desc, data)
}

func (p *pusher) putBlob(ctx context.Context, dgst digest.Digest, data []byte) error {
	resp, err := p.do(ctx, http.MethodPost, "/v2/"+p.repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("testregistry: upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	_, err = p.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", data, http.StatusCreated)
	return err
}

func (p *pusher) putManifest(ctx context.Context, ref string, desc ocispec.Descriptor, data []byte) error {
	resp, err := p.do(ctx, http.MethodPut, "/v2/"+p.repo+"/manifests/"+ref, desc.MediaType, data, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != desc.Digest.String() {
		return fmt.Errorf("testregistry: PUT manifest %s:%s: registry digest %q, want %s", p.repo, ref, got, desc.Digest)
	}
	return nil
}

// do sends a request to target (a path or absolute URL) and checks the status.
func (p *pusher) do(ctx context.Context, method, target, ctype string, body []byte, want int) (*http.Response, error) {
	u, err := url.Parse(p.r.URL())
	if err != nil {
		return nil, err
	}
	ref, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.ResolveReference(ref).String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if p.r.user != "" {
		req.SetBasicAuth(p.r.user, p.r.password)
	}
	resp, err := p.r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testregistry: %s %s: %w", method, ref.Path, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("testregistry: %s %s: status %d, want %d: %s", method, ref.Path, resp.StatusCode, want, bytes.TrimSpace(msg))
	}
	return resp, nil
}
