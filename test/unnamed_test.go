package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An entry nothing names (docker's RepoTags null; `cosign save`'s
// layout, whose entries carry only a "kind") is imported under its digest
// as ctr --digests names it, import-<date>@sha256:… or BASE@sha256:…;
// ls shows it as <none>@sha256:…. cosign's signature entries are no image:
// skipped, said so.
func TestUnnamedEntries(t *testing.T) {
	today := "import-" + time.Now().Format("2006-01-02")
	t.Run("docker-repotags-null", func(t *testing.T) {
		b := uniqueImage(t, "", impHostPlatform(), true, testseed.Gzip)
		seed := writeDocker(t, []testseed.DockerImage{{RepoTags: nil, Built: b}}, testseed.Uncompressed)
		ns := namespace(t)
		mustImport(t, ns, seed)
		imgs := imageMap(t, ns)
		if len(imgs) != 1 {
			t.Fatalf("images %v; want one, by digest", keys(imgs))
		}
		for n, img := range imgs {
			if n != today+"@"+img.Target.Digest.String() {
				t.Errorf("named %s; want %s@<its digest>", n, today)
			}
			impAssertUnpacked(t, ns, n)
		}
		ns2 := namespace(t) + "-base"
		mustImport(t, ns2, "--base-name", "registry.local/unnamed/app", seed)
		for n, img := range imageMap(t, ns2) {
			if n != "registry.local/unnamed/app@"+img.Target.Digest.String() {
				t.Errorf("with --base-name: named %s", n)
			}
		}
	})
	t.Run("cosign-save-layout-fixture", func(t *testing.T) {
		// Built from cosign's layout (pkg/oci/layout: index.json entries
		// annotated kind=dev.cosignproject.cosign/{image,sigs}, no names);
		// issue 14 makes the same layout with the real cosign.
		b := uniqueImage(t, "", impHostPlatform(), false, testseed.Gzip)
		payload := []byte(`{"critical":{"identity":{"docker-reference":"registry.local/unnamed/signed"},"image":{"docker-manifest-digest":"` + b.Manifest.Digest.String() + `"},"type":"cosign container image signature"},"optional":null}`)
		sigLayer := ocispec.Descriptor{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: digest.FromBytes(payload), Size: int64(len(payload)),
			Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="}}
		cfg := []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(payload).String() + `"]}}`)
		cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
		m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{sigLayer}})
		sigDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
		var s testseed.Seed
		s.AddRaw(b.Manifest, map[string]string{"kind": "dev.cosignproject.cosign/image"}, b.Blobs)
		s.AddRaw(sigDesc, map[string]string{"kind": "dev.cosignproject.cosign/sigs"}, map[digest.Digest][]byte{
			sigDesc.Digest: m, cfgDesc.Digest: cfg, sigLayer.Digest: payload})
		seed := writeOCI(t, &s, testseed.Uncompressed)

		ls := ctrSeedRun(t, namespace(t), "ls", seed)
		if ls.code != 0 || !strings.Contains(ls.stdout, "<none>@"+b.Manifest.Digest.String()) || !strings.Contains(ls.stdout, "(dev.cosignproject.cosign/sigs)") {
			t.Errorf("ls: exit %d\n%s%s", ls.code, ls.stdout, ls.stderr)
		}
		ns := namespace(t)
		r := mustImport(t, ns, seed)
		want := today + "@" + b.Manifest.Digest.String()
		imgs := imageMap(t, ns)
		if len(imgs) != 1 || imgs[want].Target.Digest != b.Manifest.Digest {
			t.Errorf("images %v; want %s alone", keys(imgs), want)
		}
		impAssertUnpacked(t, ns, want)
		if !strings.Contains(r.stdout, "skipped "+sigDesc.Digest.String()+": sigs of an image of the seed (dev.cosignproject.cosign/sigs), not an image") {
			t.Errorf("no skipped line for the signatures:\n%s", r.stdout)
		}
	})
}
