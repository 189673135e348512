package pusher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		name, to string
		flat     bool
		want     string
	}{
		{"docker.io/library/alpine:3.20", "mirror:5000/site", false, "mirror:5000/site/docker.io/library/alpine:3.20"},
		{"alpine", "mirror:5000", false, "mirror:5000/docker.io/library/alpine:latest"},
		{"ghcr.io/org/app@sha256:" + strings.Repeat("a", 64), "m/p/", false, "m/p/ghcr.io/org/app@sha256:" + strings.Repeat("a", 64)},
		{"docker.io/library/alpine:3.20", "mirror:5000/site", true, "mirror:5000/site/library/alpine:3.20"},
		{"registry.local:5000/app:1", "mirror:5000", false, "mirror:5000/registry.local_5000/app:1"},
	} {
		got, err := Target(tc.name, Options{To: tc.to, Flat: tc.flat})
		if err != nil || got != tc.want {
			t.Errorf("Target(%s, %s, flat %v) = %s, %v; want %s", tc.name, tc.to, tc.flat, got, err, tc.want)
		}
	}
	if _, err := Target("Not A Ref", Options{To: "m"}); err == nil {
		t.Error("a bad name is taken")
	}
}

// hosts.toml is what containerd reads: the mirror host with the prefix
// path (and the registry unless flat), pull and resolve, override_path.
func TestWriteHosts(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteHosts(dir, []string{"docker.io", "registry.local"}, HostsOptions{Mirror: "mirror:5000/site", PlainHTTP: true})
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	var doc struct {
		Server string `toml:"server"`
		Host   map[string]struct {
			Capabilities []string `toml:"capabilities"`
			OverridePath bool     `toml:"override_path"`
		} `toml:"host"`
	}
	if _, err := toml.DecodeFile(filepath.Join(dir, "docker.io", "hosts.toml"), &doc); err != nil {
		t.Fatal(err)
	}
	h, ok := doc.Host["http://mirror:5000/v2/site/docker.io"]
	if doc.Server != "https://registry-1.docker.io" || !ok || !h.OverridePath || strings.Join(h.Capabilities, ",") != "pull,resolve" {
		t.Errorf("docker.io/hosts.toml: %+v", doc)
	}
	if _, err := WriteHosts(dir, []string{"docker.io"}, HostsOptions{Mirror: "m"}); err == nil {
		t.Error("an existing hosts.toml overwritten without Force")
	}
	if _, err := WriteHosts(dir, []string{"docker.io"}, HostsOptions{Mirror: "m", Flat: true, Force: true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "docker.io", "hosts.toml"))
	if !strings.Contains(string(b), `[host."https://m/v2"]`) {
		t.Errorf("flat, no prefix:\n%s", b)
	}
	if _, err := WriteHosts(dir, []string{"../etc"}, HostsOptions{Mirror: "m"}); err == nil {
		t.Error("a registry name with a path taken")
	}
}

func TestLocator(t *testing.T) {
	for in, want := range map[string]string{
		"host:5000/a/b:1": "host:5000/a/b",
		"host:5000/a/b@sha256:" + strings.Repeat("0", 64): "host:5000/a/b",
		"host/a/b":      "host/a/b",
		"host:5000/a/b": "host:5000/a/b",
	} {
		if got := locator(in); got != want {
			t.Errorf("locator(%s) = %s, want %s", in, got, want)
		}
	}
}
