package plugin_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/v2/client"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// pluginDaemon is a containerd-seed started from the repo's config.toml,
// watching a seeds dir of its own.
type pluginDaemon struct {
	d          *harness.Daemon
	c          *client.Client
	seeds      string
	ns         string            // the config's namespace
	labels     map[string]string // what every image it imports must carry
	pluginRoot string            // the plugin's dir below containerd's root (state.json)
}

// newSeedsDir is an empty seeds dir in the test's temp dir.
func newSeedsDir(t *testing.T) string {
	t.Helper()
	seeds := filepath.Join(t.TempDir(), "seeds")
	if err := os.Mkdir(seeds, 0o755); err != nil {
		t.Fatal(err)
	}
	return seeds
}

// startPlugin starts containerd-seed on seeds (from newSeedsDir, maybe
// holding seeds for the boot pass) with opts' other settings.
func startPlugin(t *testing.T, seeds string, opts harness.DaemonOptions) *pluginDaemon {
	t.Helper()
	return startPluginWith(t, seeds, opts, nil)
}

// startPluginWith is startPlugin with keys of the plugin's table set to
// other values than config.toml's (each key must be in config.toml).
func startPluginWith(t *testing.T, seeds string, opts harness.DaemonOptions, keys map[string]any) *pluginDaemon {
	t.Helper()
	cfgPath, section := pluginConfig(t, seeds, keys)
	opts.Binary, opts.ConfigFile = containerdSeed, cfgPath
	start := time.Now()
	d := harness.StartDaemon(t, opts)
	t.Logf("containerd-seed ready in %v", time.Since(start).Round(time.Millisecond))
	ns, _ := section["namespace"].(string)
	return &pluginDaemon{d: d, c: d.Client(t), seeds: seeds, ns: ns, labels: wantLabels(t, section),
		pluginRoot: filepath.Join(d.Root, pluginID)}
}

// assertServing fails the test unless the daemon still answers.
func (p *pluginDaemon) assertServing(t *testing.T) {
	t.Helper()
	if _, err := p.c.Version(nsCtx(p.ns)); err != nil {
		t.Fatalf("daemon stopped serving: %v", err)
	}
}

// assertSettled checks that no import is left half-done in the config's
// namespace: no ctr-seed lease, no ingest.
func (p *pluginDaemon) assertSettled(t *testing.T) {
	t.Helper()
	assertNoLeases(t, p.c, p.ns)
	assertNoIngests(t, p.c, p.ns)
}

// probeUntilEnd calls Version on the daemon from now until the test ends;
// every call must answer, within 5 s (the service never blocks the daemon).
func (p *pluginDaemon) probeUntilEnd(t *testing.T) {
	probe := probeVersion(p.c, p.ns)
	t.Cleanup(func() { probe.stop(t, 5*time.Second) })
}

// assertNoIngests: nothing is left half-written in the content store.
func assertNoIngests(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	if in := harness.Ingests(t, c, ns); len(in) != 0 {
		t.Errorf("ingests left in the content store of %s: %v", ns, in)
	}
}

// pluginConfig turns the repo's config.toml into a harness config
// template: the same file, with root, state, temp and both sockets moved
// into the daemon's temp dir, host paths (opt, NRI) kept out of the host,
// and seeds_dir set. It also returns the importer's section as parsed, so
// the test checks what the shipped config asks for.
func pluginConfig(t *testing.T, seedsDir string, keys map[string]any) (path string, section map[string]any) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(moduleRoot, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(src, &cfg); err != nil {
		t.Fatalf("config.toml: %v", err)
	}
	if v, _ := cfg["version"].(int64); v != 4 {
		t.Fatalf("config.toml: version = %v, want 4", cfg["version"])
	}
	plugins, _ := cfg["plugins"].(map[string]any)
	table := func(name string) map[string]any {
		m, ok := plugins[name].(map[string]any)
		if !ok {
			t.Fatalf("config.toml has no [plugins.%q] table", name)
		}
		return m
	}
	set := func(m map[string]any, key string, v any) {
		if _, ok := m[key]; !ok {
			t.Fatalf("config.toml: key %q missing (have %v)", key, slices.Sorted(maps.Keys(m)))
		}
		m[key] = v
	}
	set(cfg, "root", "{{.Root}}")
	set(cfg, "state", "{{.State}}")
	cfg["temp"] = "{{.Dir}}/tmp"
	set(table("io.containerd.server.v1.grpc"), "address", "{{.Address}}")
	set(table("io.containerd.server.v1.ttrpc"), "address", "{{.Address}}.ttrpc")
	section = table(pluginID)
	set(section, "seeds_dir", seedsDir)
	for k, v := range keys {
		set(section, k, v)
	}
	plugins["io.containerd.internal.v1.opt"] = map[string]any{"path": "{{.Dir}}/opt"}
	plugins["io.containerd.nri.v1.nri"] = map[string]any{"socket_path": "{{.Dir}}/nri.sock"}

	out, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "config.toml.tmpl")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, section
}

// wantLabels are the labels every imported image must carry: the
// config's, the pin, and CRI's "managed" mark in k8s.io.
func wantLabels(t *testing.T, section map[string]any) map[string]string {
	t.Helper()
	l := map[string]string{}
	if m, ok := section["labels"].(map[string]any); ok {
		for k, v := range m {
			l[k] = fmt.Sprint(v)
		}
	}
	if len(l) == 0 {
		t.Fatalf("config.toml's importer section sets no labels: nothing to check")
	}
	if section["pin"] != true {
		t.Fatalf("config.toml: pin = %v; this test expects the shipped config to pin", section["pin"])
	}
	l[labelPinned] = "pinned"
	if section["namespace"] == "k8s.io" {
		l[labelManaged] = "managed"
	}
	return l
}
