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
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/setting"
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
	Keys []Key `toml:"verify_keys" json:"keys"`
	// Mode is Always (the default when keys are given) or IfSigned.
	Mode string `toml:"verify" json:"mode,omitempty"`
	// IgnoreIdentity skips the check that the payload names the image's
	// repository.
	IgnoreIdentity bool `toml:"verify_ignore_identity" json:"ignoreIdentity,omitempty"`
}

// Key is one trusted public key.
type Key struct {
	Name string `json:"name"`
	PEM  []byte `json:"pem"`
}

// keyText is a Key as JSON carries it (the --in-daemon wire): the PEM as
// its text, not base64.
type keyText struct {
	Name string `json:"name"`
	PEM  string `json:"pem"`
}

func (k Key) MarshalJSON() ([]byte, error) { return json.Marshal(keyText{k.Name, string(k.PEM)}) }

func (k *Key) UnmarshalJSON(b []byte) error {
	var t keyText
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	*k = Key{Name: t.Name, PEM: []byte(t.PEM)}
	return nil
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
		return nil, setting.Invalid(o, "Mode", o.Mode, fmt.Sprintf("want %s or %s", Always, IfSigned))
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

// Verdict is what an image's signatures say of the names it is to be
// recorded under.
type Verdict struct {
	// Warning is said of an unsigned image let in (IfSigned).
	Warning string
	// Refused are the names no valid signature's identity covers, each
	// with why; the other names are covered.
	Refused map[string]error
}

// Check verifies the image target of seed s, to be recorded under names
// (none when the seed names it not), by the signatures the seed carries
// for it.
func (p *Policy) Check(ctx context.Context, s *fetcher.Seed, target digest.Digest, names []string) (Verdict, error) {
	sigs, err := s.Signatures(ctx, target)
	if err != nil {
		return Verdict{}, err
	}
	return p.Verify(sigs, target, names)
}

// Verify checks the image target, to be recorded under names, by sigs:
// the signatures found for it (in seeds or a registry). The image is
// refused (an error saying why) when it is unsigned (Always), when no
// signature is valid under a key over target, or when it has no name to
// check an identity against. Otherwise each name must be in the
// repository a valid signature names (unless IgnoreIdentity): a signature
// vouches for its repository, not for whatever else a seed calls the same
// digest; the names that are not are in the Verdict's Refused.
func (p *Policy) Verify(sigs []fetcher.Signature, target digest.Digest, names []string) (Verdict, error) {
	if len(sigs) == 0 {
		if p.opts.Mode == IfSigned {
			return Verdict{Warning: "no signature: let in (--verify=if-signed)"}, nil
		}
		return Verdict{}, fmt.Errorf("no signature: %w", ErrUnverified)
	}
	var why, identities []string
	for _, sig := range sigs {
		id, err := p.checkOne(sig, target)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if !slices.Contains(identities, id) {
			identities = append(identities, id)
		}
	}
	if len(identities) == 0 {
		return Verdict{}, fmt.Errorf("%d %s, none valid: %s: %w", len(sigs), plural(len(sigs)), dedupe(why), ErrUnverified)
	}
	if p.opts.IgnoreIdentity {
		return Verdict{}, nil
	}
	if len(names) == 0 {
		return Verdict{}, fmt.Errorf("the seed gives the image no name to check the signature's identity %s against (--verify-ignore-identity): %w",
			strings.Join(identities, " and "), ErrUnverified)
	}
	var v Verdict
	for _, n := range names {
		want, err := repository(n)
		switch {
		case err != nil:
			err = fmt.Errorf("the name is no reference to check the signature's identity %s against: %w", strings.Join(identities, " and "), ErrUnverified)
		case !slices.Contains(identities, want):
			err = fmt.Errorf("identity %s, want %s: %w", strings.Join(identities, " and "), want, ErrUnverified)
		default:
			continue
		}
		if v.Refused == nil {
			v.Refused = map[string]error{}
		}
		v.Refused[n] = err
	}
	return v, nil
}

// checkOne: the signature is valid under a key, over a payload for
// target; it returns the repository the payload names (its identity,
// normalised; quoted when it is no reference).
func (p *Policy) checkOne(sig fetcher.Signature, target digest.Digest) (string, error) {
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
		return "", fmt.Errorf("not valid for key %s", strings.Join(names, ", "))
	}
	var pl payload.SimpleContainerImage
	if err := json.Unmarshal(sig.Payload, &pl); err != nil {
		return "", fmt.Errorf("payload is no simple-signing JSON: %v", err)
	}
	if got := pl.Critical.Image.DockerManifestDigest; got != target.String() {
		if _, err := digest.Parse(got); err != nil {
			got = strconv.Quote(got)
		}
		return "", fmt.Errorf("signature is for %s not %s", got, target)
	}
	ref := pl.Critical.Identity.DockerReference
	if repo, err := repository(ref); err == nil {
		return repo, nil
	}
	return strconv.Quote(ref), nil
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
