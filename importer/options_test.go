package importer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/ctr-seed/ctr-seed/internal/setting"
)

// The zero Options are the defaults, every one of them: a zero
// concurrency is 3 blobs at once, and absent limits are the default bomb
// cap, not "no cap"; caps nothing only when asked (a zero Limits).
func TestZeroOptionsAreDefaults(t *testing.T) {
	s := newStores(t)
	im, err := New(s.svc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if im.opts.Concurrency != defaultConcurrency || im.opts.LeaseExpiry != defaultLeaseExpiry {
		t.Errorf("zero options: concurrency %d, lease expiry %s; want the defaults", im.opts.Concurrency, im.opts.LeaseExpiry)
	}
	if got := im.layerLimits(); got != layerlimit.Default() {
		t.Errorf("zero options: layer limits %+v; want the default cap %+v", got, layerlimit.Default())
	}
	im, err = New(s.svc, Options{Limits: &layerlimit.Limits{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := im.layerLimits(); got != (layerlimit.Limits{}) {
		t.Errorf("limits asked to cap nothing: %+v", got)
	}
}

// Validate's errors name the option by its key, the toml tag of its
// field, for every option it checks; New refuses the same options.
func TestOptionsValidateNamesTheKey(t *testing.T) {
	for key, o := range map[string]Options{
		"discard_unpacked_layers": {NoUnpack: true, DiscardUnpackedLayers: true},
		"concurrency":             {Concurrency: -1},
		"unpack_concurrency":      {UnpackConcurrency: -2},
		"lease_expiry":            {LeaseExpiry: -time.Second},
		"max_layer_ratio":         {Limits: &layerlimit.Limits{Ratio: -1}},
		"max_layer_bytes":         {Limits: &layerlimit.Limits{MaxBytes: -1}},
		"verify":                  {Verify: trust.Options{Mode: trust.IfSigned}}, // no keys
	} {
		err := o.Validate()
		var se *setting.Error
		if !errdefs.IsInvalidArgument(err) || !errors.As(err, &se) || se.Key != key || !strings.HasPrefix(err.Error(), key+" ") {
			t.Errorf("%s: %v; want invalid, naming %s", key, err, key)
		}
		if _, err := New(newStores(t).svc, o); !errors.As(err, &se) || se.Key != key {
			t.Errorf("New with bad %s: %v", key, err)
		}
	}
	withKey := Options{Verify: trust.Options{Keys: []trust.Key{{Name: "k.pub", PEM: []byte("no key")}}, Mode: "sometimes"}}
	if err := withKey.Validate(); !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), `verify "sometimes": `) {
		t.Errorf("unknown mode: %v", err)
	}
	withKey.Verify.Mode = ""
	if err := withKey.Validate(); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "k.pub") {
		t.Errorf("no key: %v; want the key named", err)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}
