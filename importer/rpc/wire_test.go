package rpc

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// want is the request both testdata/request-v0.json (what ctr-seed sent
// before the schema had a version: Go's field names) and its version 1
// encoding carry.
var want = importer.Options{
	Snapshotter:        "overlayfs",
	Platforms:          []ocispec.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	SkipMissing:        true,
	Digests:            true,
	SkipDigestForNamed: true,
	Labels:             map[string]string{"team": "edge"},
	Pin:                true,
	DaemonApply:        true,
	Limits:             &layerlimit.Limits{Ratio: 50, Allowance: layerlimit.DefaultAllowance, MaxBytes: 1 << 20},
}

func TestOldRequestDecodes(t *testing.T) {
	b, err := os.ReadFile("testdata/request-v0.json")
	if err != nil {
		t.Fatal(err)
	}
	seeds, got, err := decodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seeds, []string{"/var/lib/seeds/app.tar"}) || !reflect.DeepEqual(got, want) {
		t.Errorf("v0 request decoded to %v, %+v; want %+v", seeds, got, want)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	opts := want
	opts.Observer = nil
	opts.Concurrency, opts.LeaseExpiry = 7, time.Minute // client-side only: not sent
	b, err := encodeRequest([]string{"/a", "/b"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The wire names are the schema's, not Go's.
	var raw map[string]any
	json.Unmarshal(b, &raw)
	o, _ := raw["options"].(map[string]any)
	if raw["version"] != float64(Version) || o == nil || o["daemonApply"] != true || o["layerLimits"] == nil {
		t.Errorf("wire request %s: want version %d, options.daemonApply, options.layerLimits", b, Version)
	}
	seeds, got, err := decodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seeds, []string{"/a", "/b"}) || !reflect.DeepEqual(got, want) {
		t.Errorf("round trip: %v, %+v; want %+v", seeds, got, want)
	}
	// No-unpack travels; the importer, not the wire, drops the caps then.
	opts.NoUnpack, opts.Limits = true, &layerlimit.Limits{}
	b, _ = encodeRequest(nil, opts)
	if _, got, _ := decodeRequest(b); !got.NoUnpack || got.Limits == nil || *got.Limits != (layerlimit.Limits{}) {
		t.Errorf("no-unpack, no limits: %+v", got)
	}
}

func TestRequestVersions(t *testing.T) {
	_, _, err := decodeRequest([]byte(`{"version": 2, "seeds": ["/a"]}`))
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("version 2: %v; want not implemented, naming the version", err)
	}
	_, _, err = decodeRequest([]byte(`{"version": 1, "options": {"layerLimits": {"ratio": -1}}}`))
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative ratio: %v", err)
	}
	// A v1 request without limits gets the defaults (nil: the importer's).
	_, got, err := decodeRequest([]byte(`{"version": 1, "seeds": ["/a"]}`))
	if err != nil || got.Limits != nil {
		t.Errorf("v1 without limits: %+v, %v; want the defaults", got.Limits, err)
	}
}

// An old daemon's reply (Go's field names) still decodes, and so does a
// new one.
func TestReplyDecodes(t *testing.T) {
	b, err := os.ReadFile("testdata/reply-v0.json")
	if err != nil {
		t.Fatal(err)
	}
	old, err := decodeReply(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 2 || old[0].Names[0] != "docker.io/library/app:1" || old[0].FromSeed != 1234 || old[0].Duration != 1500*time.Millisecond ||
		old[0].Err != nil || old[1].Err == nil || old[1].Err.Error() != "seed /var/lib/seeds/app.tar: image x: broken" {
		t.Fatalf("v0 reply decoded to %+v", old)
	}
	b, err = encodeReply(old)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeReply(b)
	if err != nil || len(again) != 2 || again[0].Target != old[0].Target || again[1].Err.Error() != old[1].Err.Error() ||
		again[0].Duration != old[0].Duration || !reflect.DeepEqual(again[0].Names, old[0].Names) {
		t.Errorf("reply round trip: %+v, %v; want %+v", again, err, old)
	}
}
