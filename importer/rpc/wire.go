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
// "options" is importer.Options under the json keys its fields spell out
// (layerlimit.Limits and trust.Options for the nested ones); a new option
// is a field with its key, listed here (TestSchemaDocumented fails until it
// is). The client's progress observer, blob and unpack concurrency, lease
// expiry and pull labels (json "-") do not travel: the daemon uses its own.
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
	// Options travel under their json keys, explicit on every field
	// (TestSchemaDocumented): renaming a Go field changes nothing here.
	Options importer.Options `json:"options"`

	// Version 0 only.
	MaxLayerRatio *int   `json:"maxLayerRatio,omitempty"`
	MaxLayerBytes *int64 `json:"maxLayerBytes,omitempty"`
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
// is on the wire. The client-only options (json "-": the observer,
// concurrency, lease expiry) do not travel: the daemon uses its own.
func encodeRequest(seeds []string, o importer.Options) ([]byte, error) {
	if !o.Verify.Enabled() {
		o.Verify = trust.Options{} // "verify" absent: nothing is checked
	}
	return json.Marshal(request{Version: Version, Seeds: seeds, Options: o})
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
	o = r.Options
	// Absent limits stay nil: the importer's default cap.
	if r.Version == 0 && o.Limits == nil && (r.MaxLayerRatio != nil || r.MaxLayerBytes != nil) {
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
