package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The wire schema, version 1. Request and reply are JSON objects, each in
// the value of a google.protobuf.BytesValue. Field names are this
// package's own, not Go's: renaming a Go field does not change them.
//
// Request:
//
//	{
//	  "version": 1,
//	  "seeds": ["/abs/path", ...],        // on the daemon's node
//	  "options": {
//	    "snapshotter": "overlayfs",       // "": the daemon's default
//	    "noUnpack": false,
//	    "platforms": [{"os": "linux", "architecture": "arm64", "variant": "v8"}],
//	    "allPlatforms": false,
//	    "skipMissing": false,
//	    "baseName": "", "digests": false, "skipDigestForNamed": false, "indexName": "",
//	    "labels": {"k": "v"},
//	    "pin": false,
//	    "daemonApply": false,
//	    "layerLimits": {"ratio": 200, "allowance": 1073741824, "maxBytes": 0},  // absent: the defaults
//	    "discardUnpackedLayers": false, "syncFs": false,
//	    "digestRefs": false,                // repo@digest beside every repo:tag
//	    "verify": {                         // absent: nothing is checked
//	      "keys": [{"name": "cosign.pub", "pem": "-----BEGIN PUBLIC KEY-----…"}],
//	      "mode": "always",                 // or "if-signed"; "": always
//	      "ignoreIdentity": false
//	    }
//	  }
//	}
//
// The client's progress observer, blob and unpack concurrency and lease
// expiry do not travel: the daemon uses its own.
//
// Version 0 is what ctr-seed sent before there was a version: no
// "version" key, Go's field names (which decode into the same fields, as
// JSON names match case-insensitively), and the layer limits as top-level
// "maxLayerRatio" and "maxLayerBytes" (sent as "MaxLayerRatio",
// "MaxLayerBytes"). It is still accepted. A request of
// a newer version than this build's is refused (errdefs.ErrNotImplemented).
//
// Reply:
//
//	{"version": 1, "images": [{"seed": "/abs/path", "names": ["docker.io/library/alpine:3.20"],
//	  "target": "sha256:…", "mediaType": "…", "fromSeed": 123, "fromRegistry": 0,
//	  "duration": 1500000000, "fromStore": 2, "signatures": 1,
//	  "err": "…", "skipped": "…", "warning": "…"}]}
//
// duration is in ns; err is "" when the image landed; skipped says why it
// was left out on purpose; warning is said of an image that landed anyway
// (unsigned, let in by verify "if-signed"); signatures counts the
// signature manifests kept with it; fromStore counts the blobs the store
// already had.

// Version is the schema version this build sends and the newest it reads.
const Version = 1

type request struct {
	Version int      `json:"version"`
	Seeds   []string `json:"seeds"`
	Options options  `json:"options"`

	// Version 0 only.
	MaxLayerRatio *int   `json:"maxLayerRatio,omitempty"`
	MaxLayerBytes *int64 `json:"maxLayerBytes,omitempty"`
}

type options struct {
	Snapshotter        string             `json:"snapshotter,omitempty"`
	NoUnpack           bool               `json:"noUnpack,omitempty"`
	Platforms          []ocispec.Platform `json:"platforms,omitempty"`
	AllPlatforms       bool               `json:"allPlatforms,omitempty"`
	SkipMissing        bool               `json:"skipMissing,omitempty"`
	BaseName           string             `json:"baseName,omitempty"`
	Digests            bool               `json:"digests,omitempty"`
	SkipDigestForNamed bool               `json:"skipDigestForNamed,omitempty"`
	IndexName          string             `json:"indexName,omitempty"`
	Labels             map[string]string  `json:"labels,omitempty"`
	Pin                bool               `json:"pin,omitempty"`
	DaemonApply        bool               `json:"daemonApply,omitempty"`
	LayerLimits        *limits            `json:"layerLimits,omitempty"`
	DiscardLayers      bool               `json:"discardUnpackedLayers,omitempty"`
	SyncFs             bool               `json:"syncFs,omitempty"`
	DigestRefs         bool               `json:"digestRefs,omitempty"`
	Verify             *verify            `json:"verify,omitempty"`
}

// verify is trust.Options: the keys travel as their PEM text.
type verify struct {
	Keys           []verifyKey `json:"keys"`
	Mode           string      `json:"mode,omitempty"`
	IgnoreIdentity bool        `json:"ignoreIdentity,omitempty"`
}

type verifyKey struct {
	Name string `json:"name"`
	PEM  string `json:"pem"`
}

type limits struct {
	Ratio     int   `json:"ratio"`
	Allowance int64 `json:"allowance"`
	MaxBytes  int64 `json:"maxBytes"`
}

type reply struct {
	Version int     `json:"version"`
	Images  []image `json:"images"`
}

type image struct {
	Seed         string        `json:"seed"`
	Names        []string      `json:"names,omitempty"`
	Target       digest.Digest `json:"target"`
	MediaType    string        `json:"mediaType,omitempty"`
	FromSeed     int64         `json:"fromSeed"`
	FromRegistry int64         `json:"fromRegistry"`
	Duration     int64         `json:"duration"`
	Err          string        `json:"err,omitempty"`
	Skipped      string        `json:"skipped,omitempty"`
	FromStore    int           `json:"fromStore,omitempty"`
	Warning      string        `json:"warning,omitempty"`
	Signatures   int           `json:"signatures,omitempty"`
}

// encodeRequest is the client's side: what a request for seeds with opts
// is on the wire. The client-only options (Observer, concurrency, lease
// expiry) do not travel: the daemon uses its own.
func encodeRequest(seeds []string, o importer.Options) ([]byte, error) {
	var ll *limits
	if l := o.Limits; l != nil {
		ll = &limits{Ratio: l.Ratio, Allowance: l.Allowance, MaxBytes: l.MaxBytes}
	}
	return json.Marshal(request{Version: Version, Seeds: seeds, Options: options{
		Snapshotter: o.Snapshotter, NoUnpack: o.NoUnpack, Platforms: o.Platforms, AllPlatforms: o.AllPlatforms,
		SkipMissing: o.SkipMissing, BaseName: o.BaseName, Digests: o.Digests, SkipDigestForNamed: o.SkipDigestForNamed,
		IndexName: o.IndexName, Labels: o.Labels, Pin: o.Pin, DaemonApply: o.DaemonApply,
		LayerLimits:   ll,
		DiscardLayers: o.DiscardUnpackedLayers, SyncFs: o.SyncFs, DigestRefs: o.DigestRefs,
		Verify: encodeVerify(o.Verify),
	}})
}

// decodeRequest is the daemon's side, for every version it knows.
func decodeRequest(b []byte) (seeds []string, o importer.Options, err error) {
	var r request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, o, fmt.Errorf("ctr-seed import request: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if r.Version > Version || r.Version < 0 {
		return nil, o, fmt.Errorf("ctr-seed import request: version %d, this containerd-seed reads up to %d (upgrade it): %w",
			r.Version, Version, errdefs.ErrNotImplemented)
	}
	w := r.Options
	o = importer.Options{
		Snapshotter: w.Snapshotter, NoUnpack: w.NoUnpack, Platforms: w.Platforms, AllPlatforms: w.AllPlatforms,
		SkipMissing: w.SkipMissing, BaseName: w.BaseName, Digests: w.Digests, SkipDigestForNamed: w.SkipDigestForNamed,
		IndexName: w.IndexName, Labels: w.Labels, Pin: w.Pin, DaemonApply: w.DaemonApply,
		DiscardUnpackedLayers: w.DiscardLayers, SyncFs: w.SyncFs, DigestRefs: w.DigestRefs,
	}
	if v := w.Verify; v != nil {
		o.Verify = trust.Options{Mode: v.Mode, IgnoreIdentity: v.IgnoreIdentity}
		for _, k := range v.Keys {
			o.Verify.Keys = append(o.Verify.Keys, trust.Key{Name: k.Name, PEM: []byte(k.PEM)})
		}
	}
	// Absent limits stay nil: the importer's default cap.
	switch {
	case w.LayerLimits != nil:
		o.Limits = &layerlimit.Limits{Ratio: w.LayerLimits.Ratio, Allowance: w.LayerLimits.Allowance, MaxBytes: w.LayerLimits.MaxBytes}
	case r.Version == 0 && (r.MaxLayerRatio != nil || r.MaxLayerBytes != nil):
		l := layerlimit.Default()
		if r.MaxLayerRatio != nil {
			l.Ratio = *r.MaxLayerRatio
		}
		if r.MaxLayerBytes != nil {
			l.MaxBytes = *r.MaxLayerBytes
		}
		o.Limits = &l
	}
	// The rest of the options is checked by importer.New, once.
	if o.Limits != nil {
		if err := o.Limits.Validate(); err != nil {
			return nil, o, fmt.Errorf("ctr-seed import request: %w", err)
		}
	}
	return r.Seeds, o, nil
}

func encodeVerify(o trust.Options) *verify {
	if !o.Enabled() {
		return nil
	}
	v := &verify{Mode: o.Mode, IgnoreIdentity: o.IgnoreIdentity}
	for _, k := range o.Keys {
		v.Keys = append(v.Keys, verifyKey{Name: k.Name, PEM: string(k.PEM)})
	}
	return v
}

func encodeReply(results []importer.ImageResult) ([]byte, error) {
	rep := reply{Version: Version}
	for _, r := range results {
		im := image{Seed: r.Seed, Names: r.Names, Target: r.Target, MediaType: r.MediaType,
			FromSeed: r.FromSeed, FromRegistry: r.FromRegistry, Duration: int64(r.Duration), Skipped: r.Skipped, FromStore: r.FromStore, Warning: r.Warning, Signatures: r.Signatures}
		if r.Err != nil {
			im.Err = r.Err.Error()
		}
		rep.Images = append(rep.Images, im)
	}
	return json.Marshal(rep)
}

func decodeReply(b []byte) ([]importer.ImageResult, error) {
	var rep reply
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, err
	}
	var results []importer.ImageResult
	for _, im := range rep.Images {
		r := importer.ImageResult{Seed: im.Seed, Names: im.Names, Target: im.Target, MediaType: im.MediaType,
			FromSeed: im.FromSeed, FromRegistry: im.FromRegistry, Duration: time.Duration(im.Duration), Skipped: im.Skipped, FromStore: im.FromStore, Warning: im.Warning, Signatures: im.Signatures}
		if im.Err != "" {
			r.Err = errors.New(im.Err)
		}
		results = append(results, r)
	}
	return results, nil
}
