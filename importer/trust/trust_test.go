package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

const imageName = "registry.local/trust/app:1"

// signedSeed is a seed holding one image and, tagged the way cosign v2
// tags it, a signature by priv of a payload for digest signedFor naming
// identity; it returns the seed (opened) and the image's digest.
func signedSeed(t testing.TB, priv crypto.PrivateKey, signedFor func(digest.Digest) digest.Digest, identity string) (*fetcher.Seed, digest.Digest) {
	t.Helper()
	b, err := testseed.Build(testseed.Standard(imageName, platforms.DefaultSpec(), false, testseed.Gzip))
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + identity + `"},"image":{"docker-manifest-digest":"` +
		signedFor(b.Manifest.Digest).String() + `"},"type":"cosign container image signature"},"optional":null}`)
	signer, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(payload).String() + `"]}}`)
	cd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	ld := ocispec.Descriptor{MediaType: fetcher.MediaTypeSimpleSigning, Digest: digest.FromBytes(payload), Size: int64(len(payload)),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)}}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	var s testseed.Seed
	s.Add(imageName, b.Manifest, b.Blobs)
	s.Add("registry.local/trust/app:"+fetcher.SigTag(b.Manifest.Digest), md, map[digest.Digest][]byte{md.Digest: m, cd.Digest: cfg, ld.Digest: payload})
	var buf bytes.Buffer
	if err := s.WriteOCITar(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "signed.tar")
	os.WriteFile(p, buf.Bytes(), 0o644)
	seed, err := fetcher.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Close() })
	return seed, b.Manifest.Digest
}

func pemOf(t testing.TB, pub crypto.PublicKey) Key {
	b, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Name: "key.pub", PEM: b}
}

func same(d digest.Digest) digest.Digest { return d }

// Each key type cosign keys come in verifies; another key, another
// digest, another identity are refused, saying which.
func TestPolicy(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, priv := range map[string]crypto.Signer{"ecdsa-p256": ec, "rsa": rs, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			seed, d := signedSeed(t, priv, same, "registry.local/trust/app")
			p, err := New(Options{Keys: []Key{pemOf(t, priv.Public())}})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := p.Check(context.Background(), seed, d, []string{imageName}); err != nil || v.Warning != "" || len(v.Refused) != 0 {
				t.Errorf("valid signature: %+v, %v", v, err)
			}
			p, _ = New(Options{Keys: []Key{pemOf(t, other.Public())}})
			if _, err := p.Check(context.Background(), seed, d, []string{imageName}); err == nil || !strings.Contains(err.Error(), "1 signature, none valid: not valid for key key.pub") {
				t.Errorf("other key: %v", err)
			}
		})
	}
	p, _ := New(Options{Keys: []Key{pemOf(t, ec.Public())}})
	seed, d := signedSeed(t, ec, func(digest.Digest) digest.Digest { return digest.FromString("another image") }, "registry.local/trust/app")
	if _, err := p.Check(context.Background(), seed, d, []string{imageName}); err == nil || !strings.Contains(err.Error(), "signature is for "+digest.FromString("another image").String()+" not "+d.String()) {
		t.Errorf("another digest: %v", err)
	}
	seed, d = signedSeed(t, ec, same, "registry.local/trust/other")
	if v, err := p.Check(context.Background(), seed, d, []string{imageName}); err != nil || v.Refused[imageName] == nil ||
		!strings.Contains(v.Refused[imageName].Error(), "identity registry.local/trust/other, want registry.local/trust/app") {
		t.Errorf("another identity: %+v, %v", v, err)
	}
	if _, err := New(Options{Keys: []Key{{Name: "bad.pub", PEM: []byte("not a key")}}}); err == nil || !strings.Contains(err.Error(), "verify key bad.pub") {
		t.Errorf("a bad key: %v", err)
	}
	if _, err := New(Options{Keys: []Key{pemOf(t, ec.Public())}, Mode: "sometimes"}); err == nil {
		t.Error("mode sometimes accepted")
	}
}

// A signature vouches for its repository only: of the names an image is
// to be recorded under, those in another repository are refused, each
// saying why, whatever came first; --verify-ignore-identity lets every
// name in; no name at all is an error unless it does.
func TestPolicyNames(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	seed, d := signedSeed(t, ec, same, "registry.local/trust/app")
	p, _ := New(Options{Keys: []Key{pemOf(t, ec.Public())}})
	const forged = "docker.io/library/nginx:latest"
	names := []string{forged, imageName, "registry.local/trust/app@" + d.String(), "registry.local/trust/app:latest", "nginx", "NOT A REFERENCE"}
	v, err := p.Check(context.Background(), seed, d, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Refused) != 3 || v.Refused[forged] == nil || v.Refused["nginx"] == nil || v.Refused["NOT A REFERENCE"] == nil {
		t.Fatalf("refused %v; want %s, nginx and the non-reference alone", v.Refused, forged)
	}
	if e := v.Refused[forged].Error(); !strings.Contains(e, "identity registry.local/trust/app, want docker.io/library/nginx") || !errors.Is(v.Refused[forged], ErrUnverified) {
		t.Errorf("refusal of %s: %v", forged, e)
	}
	ignoring, _ := New(Options{Keys: []Key{pemOf(t, ec.Public())}, IgnoreIdentity: true})
	if v, err := ignoring.Check(context.Background(), seed, d, names); err != nil || len(v.Refused) != 0 {
		t.Errorf("ignoring identity: %+v, %v", v, err)
	}
	if _, err := p.Check(context.Background(), seed, d, nil); err == nil || !strings.Contains(err.Error(), "no name to check the signature's identity registry.local/trust/app against") {
		t.Errorf("no name: %v", err)
	}
	if v, err := ignoring.Check(context.Background(), seed, d, nil); err != nil || len(v.Refused) != 0 {
		t.Errorf("no name, ignoring identity: %+v, %v", v, err)
	}
}

// What verification adds to an import: the seed's signature read and one
// signature check per image.
func BenchmarkCheck(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	seed, d := signedSeed(b, ec, same, "registry.local/trust/app")
	p, _ := New(Options{Keys: []Key{pemOf(b, ec.Public())}})
	for b.Loop() {
		if _, err := p.Check(context.Background(), seed, d, []string{imageName}); err != nil {
			b.Fatal(err)
		}
	}
}
