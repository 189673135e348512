// Package trust checks, offline, that an image a seed brings was signed
// by a key the operator trusts: a cosign signature (the simple-signing
// payload cosign v2 writes by default) over exactly the digest imported,
// naming the image's repository. No transparency log is consulted: what
// `cosign verify --insecure-ignore-tlog --key K` checks.
package trust

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	distref "github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Modes: Always refuses an image without a valid signature; IfSigned
// refuses only images whose signatures all fail, and lets unsigned ones in
// with a warning.
const (
	Always   = "always"
	IfSigned = "if-signed"
)

// Options are what an import checks; the zero value checks nothing.
type Options struct {
	// Keys are PEM public keys (as cosign generate-key-pair writes
	// cosign.pub: ECDSA P-256; also RSA and ed25519), each named for the
	// error lines (its file name).
	Keys []Key
	// Mode is Always (the default when keys are given) or IfSigned.
	Mode string
	// IgnoreIdentity skips the check that the payload names the image's
	// repository.
	IgnoreIdentity bool
}

// Key is one trusted public key.
type Key struct {
	Name string
	PEM  []byte
}

// Enabled reports whether anything is to be checked.
func (o Options) Enabled() bool { return len(o.Keys) > 0 }

// Policy is Options, parsed.
type Policy struct {
	opts      Options
	verifiers []namedVerifier
}

type namedVerifier struct {
	name string
	v    signature.Verifier
}

// New parses the keys; a key that is no public key is an error naming it.
func New(o Options) (*Policy, error) {
	switch o.Mode {
	case "":
		o.Mode = Always
	case Always, IfSigned:
	default:
		return nil, fmt.Errorf("verify mode %q: want %s or %s: %w", o.Mode, Always, IfSigned, errdefs.ErrInvalidArgument)
	}
	p := &Policy{opts: o}
	for _, k := range o.Keys {
		pk, err := cryptoutils.UnmarshalPEMToPublicKey(k.PEM)
		if err != nil {
			return nil, fmt.Errorf("verify key %s: not a PEM public key: %v: %w", k.Name, err, errdefs.ErrInvalidArgument)
		}
		v, err := signature.LoadVerifier(pk, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("verify key %s: %v: %w", k.Name, err, errdefs.ErrInvalidArgument)
		}
		p.verifiers = append(p.verifiers, namedVerifier{k.Name, v})
	}
	return p, nil
}

// ErrUnverified is matched by every refusal.
var ErrUnverified = fmt.Errorf("not verified: %w", errdefs.ErrFailedPrecondition)

// Check verifies the image target of seed s, named name ("" when the seed
// names it not), by the signatures the seed carries for it.
func (p *Policy) Check(ctx context.Context, s *fetcher.Seed, target digest.Digest, name string) (warning string, err error) {
	sigs, err := s.Signatures(ctx, target)
	if err != nil {
		return "", err
	}
	return p.Verify(sigs, target, name)
}

// Verify checks the image target, named name, by sigs: the signatures
// found for it (in seeds or a registry). It returns a warning for an
// unsigned image let in (IfSigned), or an error saying why it is refused.
func (p *Policy) Verify(sigs []fetcher.Signature, target digest.Digest, name string) (warning string, err error) {
	if len(sigs) == 0 {
		if p.opts.Mode == IfSigned {
			return "no signature: let in (--verify=if-signed)", nil
		}
		return "", fmt.Errorf("no signature: %w", ErrUnverified)
	}
	var why []string
	for _, sig := range sigs {
		if err := p.checkOne(sig, target, name); err != nil {
			why = append(why, err.Error())
			continue
		}
		return "", nil
	}
	return "", fmt.Errorf("%d %s, none valid: %s: %w", len(sigs), plural(len(sigs)), dedupe(why), ErrUnverified)
}

// checkOne: the signature is valid under a key, over a payload for target
// naming the image's repository.
func (p *Policy) checkOne(sig fetcher.Signature, target digest.Digest, name string) error {
	var keyErr error
	valid := false
	for _, v := range p.verifiers {
		if err := v.v.VerifySignature(bytes.NewReader(sig.Signature), bytes.NewReader(sig.Payload)); err == nil {
			valid = true
			break
		}
	}
	if !valid {
		names := make([]string, len(p.verifiers))
		for i, v := range p.verifiers {
			names[i] = v.name
		}
		keyErr = fmt.Errorf("not valid for key %s", strings.Join(names, ", "))
		return keyErr
	}
	var pl payload.SimpleContainerImage
	if err := json.Unmarshal(sig.Payload, &pl); err != nil {
		return fmt.Errorf("payload is no simple-signing JSON: %v", err)
	}
	if got := pl.Critical.Image.DockerManifestDigest; got != target.String() {
		return fmt.Errorf("signature is for %s not %s", got, target)
	}
	if p.opts.IgnoreIdentity {
		return nil
	}
	want, err := repository(name)
	if err != nil || name == "" {
		return fmt.Errorf("the seed gives the image no name to check the signature's identity %s against (--verify-ignore-identity)", pl.Critical.Identity.DockerReference)
	}
	got, err := repository(pl.Critical.Identity.DockerReference)
	if err != nil || got != want {
		return fmt.Errorf("identity %s, want %s", pl.Critical.Identity.DockerReference, want)
	}
	return nil
}

// repository is ref's repository, normalised as containerd names images.
func repository(ref string) (string, error) {
	n, err := distref.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	return n.Name(), nil
}

func plural(n int) string {
	if n == 1 {
		return "signature"
	}
	return "signatures"
}

func dedupe(s []string) string {
	var out []string
	for _, x := range s {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return strings.Join(out, "; ")
}
