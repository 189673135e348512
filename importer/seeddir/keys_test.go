package seeddir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ctr-seed/ctr-seed/importer"
)

// notInConfig are importer.Options' keys the plugin's config lacks, each
// with why. A new option is either here or a key of Config that Settings
// carries to it (TestConfigKeysReachOptions).
var notInConfig = map[string]string{
	"no_unpack":             "the config's unpack, inverted",
	"layer_limits":          "its keys, max_layer_ratio and max_layer_bytes, are the config's",
	"layer_allowance":       "not configurable: layerlimit.DefaultAllowance",
	"trust":                 "its keys, verify_keys, verify and verify_ignore_identity, are the config's",
	"all_platforms":         "CLI only: the plugin imports what it unpacks",
	"skip_missing":          "CLI only",
	"digests":               "CLI only (digest_refs is the plugin's)",
	"skip_digest_for_named": "CLI only",
	"index_name":            "CLI only",
	"pull_labels":           "set per image list by the service",
	"lease_expiry":          "the importer's default",
	"concurrency":           "the importer's default",
	"unpack_concurrency":    "the importer's default",
	"sync_fs":               "CLI only",
	"daemon_apply":          "CLI only: the plugin is the daemon",
}

// optionFields are the toml keys of the fields of t (nested structs
// too), each with its index path.
func optionFields(t reflect.Type, path []int, out map[string][]int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if key == "-" {
			continue
		}
		p := append(append([]int(nil), path...), i)
		out[key] = p
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "github.com/opencontainers/image-spec/specs-go/v1" {
			optionFields(ft, p, out)
		}
	}
}

func fieldAt(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

func writeKey(t *testing.T, dir, name string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigKeysReachOptions: every importer option the config has a key
// for (the same toml key) is carried by Settings: changing the key
// changes the option. A new option is a Config key Settings carries, or
// listed in notInConfig.
func TestConfigKeysReachOptions(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := writeKey(t, dir, "a.pub"), writeKey(t, dir, "b.pub")
	base := DefaultConfig()
	base.VerifyKeys = []string{keyA}
	def, err := base.Settings()
	if err != nil {
		t.Fatal(err)
	}
	configKeys := map[string]int{}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		configKeys[ct.Field(i).Tag.Get("toml")] = i
	}
	opts := map[string][]int{}
	optionFields(reflect.TypeOf(importer.Options{}), nil, opts)
	for key, path := range opts {
		ci, inConfig := configKeys[key]
		if _, listed := notInConfig[key]; listed == inConfig {
			t.Errorf("option %s: in the config %v, listed in notInConfig %v: want one of them", key, inConfig, listed)
			continue
		}
		if !inConfig {
			continue
		}
		cfg := base
		cf := reflect.ValueOf(&cfg).Elem().Field(ci)
		switch key {
		case "platforms":
			cfg.Platforms = []string{"linux/arm64/v8"}
		case "verify_keys":
			cfg.VerifyKeys = []string{keyA, keyB}
		case "verify":
			cfg.Verify = "if-signed"
		default:
			switch cf.Kind() {
			case reflect.Bool:
				cf.SetBool(!cf.Bool())
			case reflect.String:
				cf.SetString(cf.String() + "-x")
			case reflect.Int, reflect.Int64:
				cf.SetInt(cf.Int() + 5)
			case reflect.Map:
				cf.Set(reflect.ValueOf(map[string]string{"k": "v"}))
			default:
				t.Errorf("%s: cannot change a %s: teach this test", key, cf.Type())
				continue
			}
		}
		set, err := cfg.Settings()
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		was, got := fieldAt(reflect.ValueOf(def.Importer), path), fieldAt(reflect.ValueOf(set.Importer), path)
		if reflect.DeepEqual(was.Interface(), got.Interface()) {
			t.Errorf("config key %s changed, importer option stayed %+v: Settings does not carry it", key, got)
		}
	}
}
