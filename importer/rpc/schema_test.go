package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/importer/trust"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
)

// clientOnly are the importer.Options that do not cross the wire, each
// with why: the daemon runs every request with its own.
var clientOnly = map[string]string{
	"Observer":          "progress is the client's; the daemon replies with results",
	"Concurrency":       "the daemon's own blob concurrency",
	"UnpackConcurrency": "the daemon's own CPU count",
	"LeaseExpiry":       "the daemon's own lease expiry",
	"PullLabels":        "pulls only: the service imports seeds",
}

// fill sets every settable leaf of v to a non-zero value derived from
// path, so that a field dropped on the way shows as a zero.
func fill(t *testing.T, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x-" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(len(path) + 7))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			s = reflect.ValueOf([]byte("bytes-" + path)).Convert(v.Type())
		} else {
			fill(t, s.Index(0), path+"[0]")
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, path+".key")
		fill(t, e, path+".value")
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), path)
		v.Set(p)
	default:
		t.Fatalf("%s: cannot fill a %s: teach fill, or list the field as client-only", path, v.Type())
	}
}

// TestEveryOptionTravels: each importer.Options field survives the wire,
// or is listed in clientOnly. A new option without wire support fails
// here.
func TestEveryOptionTravels(t *testing.T) {
	var opts importer.Options
	v := reflect.ValueOf(&opts).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if _, ok := clientOnly[f.Name]; ok {
			continue
		}
		fill(t, v.Field(i), f.Name)
	}
	b, err := encodeRequest([]string{"/s"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := decodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	g := reflect.ValueOf(got)
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if _, ok := clientOnly[f.Name]; ok {
			continue
		}
		if !reflect.DeepEqual(g.Field(i).Interface(), v.Field(i).Interface()) {
			t.Errorf("options.%s: sent %+v, the daemon got %+v (send it in wire.go, or list it in clientOnly)", f.Name, v.Field(i), g.Field(i))
		}
	}
	for name := range clientOnly {
		if _, ok := v.Type().FieldByName(name); !ok {
			t.Errorf("clientOnly lists %s, which importer.Options no longer has", name)
		}
	}
}

// TestEveryResultTravels: each importer.ImageResult field survives the
// reply.
func TestEveryResultTravels(t *testing.T) {
	var r importer.ImageResult
	v := reflect.ValueOf(&r).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.Name != "Err" {
			fill(t, v.Field(i), f.Name)
		}
	}
	r.Err = errors.New("seed /s: image x: broken")
	b, err := encodeReply([]importer.ImageResult{r})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeReply(b)
	if err != nil || len(got) != 1 {
		t.Fatalf("reply: %+v, %v", got, err)
	}
	g := reflect.ValueOf(got[0])
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		want, have := v.Field(i).Interface(), g.Field(i).Interface()
		if f.Name == "Err" {
			want, have = fmt.Sprint(want), fmt.Sprint(have)
		}
		if !reflect.DeepEqual(want, have) {
			t.Errorf("result.%s: sent %+v, the client got %+v (send it in wire.go)", f.Name, want, have)
		}
	}
}

// TestSchemaDocumented: every wire key is explicit (a json tag; "-" for
// exactly the client-only options) and in the schema's doc comment
// (wire.go), the one description of the protocol.
func TestSchemaDocumented(t *testing.T) {
	src, err := os.ReadFile("wire.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, ok := strings.Cut(string(src), "const Version")
	if !ok {
		t.Fatal("wire.go: no Version constant after the schema's doc")
	}
	for _, typ := range []any{request{}, importer.Options{}, trust.Options{}, trust.Key{}, layerlimit.Limits{}, reply{}, image{}} {
		rt := reflect.TypeOf(typ)
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			_, own := clientOnly[f.Name]
			if own = own && rt == reflect.TypeOf(importer.Options{}); own != (key == "-") {
				t.Errorf("%s.%s: wire key %q; want \"-\" exactly for the options in clientOnly", rt.Name(), f.Name, key)
			}
			if key == "" || key == "-" {
				if key == "" {
					t.Errorf("%s.%s: no explicit wire key", rt.Name(), f.Name)
				}
				continue
			}
			if !regexp.MustCompile(`"` + regexp.QuoteMeta(key) + `"`).MatchString(doc) {
				t.Errorf("%s.%s: wire key %q is not in the schema's doc (wire.go)", rt.Name(), rt.Field(i).Name, key)
			}
		}
	}
}

// testdata/request-v1.json is what the build before the options were
// encoded generically sent: it decodes to the same options, and this
// build sends the same JSON (keys and values; their order aside), so
// neither side of a mixed pair notices.
func TestRequestV1Golden(t *testing.T) {
	b, err := os.ReadFile("testdata/request-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	o := want
	o.DigestRefs, o.SyncFs, o.DiscardUnpackedLayers, o.IndexName, o.BaseName = true, true, true, "idx", "registry.local/app"
	o.Verify = trust.Options{Keys: []trust.Key{{Name: "cosign.pub", PEM: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}}, Mode: "if-signed", IgnoreIdentity: true}
	seeds, got, err := decodeRequest(b)
	if err != nil || !reflect.DeepEqual(seeds, []string{"/var/lib/seeds/app.tar"}) || !reflect.DeepEqual(got, o) {
		t.Errorf("v1 request decoded to %v, %+v, %v; want %+v", seeds, got, err, o)
	}
	sent, err := encodeRequest(seeds, o)
	var a, w map[string]any
	json.Unmarshal(sent, &a)
	json.Unmarshal(b, &w)
	if err != nil || !reflect.DeepEqual(a, w) {
		t.Errorf("v1 request encoded as\n%s\nwant\n%s", sent, b)
	}
	// Without keys, no "verify": as before, and what the doc says.
	o.Verify = trust.Options{Mode: trust.Always}
	if sent, _ = encodeRequest(nil, o); strings.Contains(string(sent), `"verify"`) {
		t.Errorf("no keys, sent %s", sent)
	}
}
