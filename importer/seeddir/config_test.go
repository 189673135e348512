package seeddir

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/internal/layerlimit"
	"github.com/klauspost/compress/zstd"
)

func TestMaxSpoolBytesConfig(t *testing.T) {
	def := DefaultConfig()
	if def.MaxSpoolBytes != fetcher.DefaultMaxSpoolBytes {
		t.Fatalf("default max_spool_bytes %d, want %d", def.MaxSpoolBytes, fetcher.DefaultMaxSpoolBytes)
	}
	cfg := DefaultConfig()
	md, err := toml.Decode("max_spool_bytes = 4096\n", &cfg)
	if err != nil || len(md.Undecoded()) > 0 || cfg.MaxSpoolBytes != 4096 {
		t.Fatalf("decoded %d, %v, undecoded %v; want 4096", cfg.MaxSpoolBytes, err, md.Undecoded())
	}

	// The key reaches the seeds the service opens: a zstd tar of 64 KiB
	// is refused under 4096, and opened (as no seed) under no cap.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 10})
	tw.Write(make([]byte, 64<<10))
	tw.Close()
	enc, _ := zstd.NewWriter(nil)
	p := filepath.Join(t.TempDir(), "bomb.tar.zst")
	if err := os.WriteFile(p, enc.EncodeAll(tb.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(c Config) error {
		set, err := c.Settings()
		if err != nil {
			t.Fatal(err)
		}
		s, err := fetcher.Open(context.Background(), p, append(set.Fetcher, fetcher.WithSpoolDir(t.TempDir()))...)
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := open(cfg); err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "expected at most 4096 bytes, got more") {
		t.Fatalf("max_spool_bytes = 4096: %v; want the seed refused by the spool cap", err)
	}
	cfg.MaxSpoolBytes = 0
	if err := open(cfg); err == nil || strings.Contains(err.Error(), "spool cap") {
		t.Fatalf("max_spool_bytes = 0: %v; want no spool cap (and the tar refused as no seed)", err)
	}
	cfg.MaxSpoolBytes = -1
	if _, err := cfg.Settings(); err == nil || !strings.Contains(err.Error(), "max_spool_bytes") {
		t.Fatalf("max_spool_bytes = -1: %v; want refused", err)
	}
	// New takes only Settings: what Settings refuses never runs.
}

// The layer-limit keys reach the importer's options as one Limits, with
// the defaults where they are absent, and bad values are refused.
func TestLayerLimitConfig(t *testing.T) {
	def, err := DefaultConfig().Settings()
	if err != nil || def.Importer.Limits == nil || *def.Importer.Limits != layerlimit.Default() {
		t.Fatalf("defaults: %+v, %v; want %+v", def.Importer.Limits, err, layerlimit.Default())
	}
	if def.Importer.Snapshotter != defaults.DefaultSnapshotter {
		t.Errorf("default snapshotter %q, want containerd's %q", def.Importer.Snapshotter, defaults.DefaultSnapshotter)
	}
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, []byte("max_layer_ratio = 0\nmax_layer_bytes = 4096\nplatforms = [\"linux/arm64\"]\n"), 0o644)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if want := (layerlimit.Limits{Ratio: 0, Allowance: layerlimit.DefaultAllowance, MaxBytes: 4096}); *set.Importer.Limits != want {
		t.Errorf("limits %+v, want %+v", set.Importer.Limits, want)
	}
	if len(set.Importer.Platforms) != 1 || set.Importer.Platforms[0].Architecture != "arm64" {
		t.Errorf("platforms %+v", set.Importer.Platforms)
	}
	for _, bad := range []string{"max_layer_bytes = -1\n", "max_layer_ratio = -5\n", "platforms = [\"linux/a/b/c/d\"]\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		cfg, err := LoadConfig(p)
		if err == nil {
			_, err = cfg.Settings()
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	os.WriteFile(p, []byte("max_layer_ratoi = 5\n"), 0o644)
	if _, err := LoadConfig(p); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "max_layer_ratoi") {
		t.Errorf("unknown key: %v; want refused, naming it", err)
	}
}

// The shipped files: ctr-seed.toml (serve's) and config.toml (the
// plugin's, in containerd's) both load, with every key Config has, and
// `serve --config config.toml` reads the plugin's table from it.
func TestShippedConfigs(t *testing.T) {
	keys := map[string]bool{}
	ty := reflect.TypeOf(Config{})
	for i := range ty.NumField() {
		keys[ty.Field(i).Tag.Get("toml")] = true
	}
	for _, f := range []string{"../../ctr-seed.toml", "../../config.toml"} {
		cfg, err := LoadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := cfg.Settings(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, _ := os.ReadFile(f)
		for k := range keys {
			if !regexp.MustCompile(`(?m)^\s*\[?([^\]\n]*\.)?` + regexp.QuoteMeta(k) + `( =|\])`).MatchString(string(b)) {
				t.Errorf("%s lacks the key %s", f, k)
			}
		}
		if cfg.SeedsDir != "/var/lib/containerd-seed/seeds" || cfg.Labels["io.ctr-seed.source"] == "" {
			t.Errorf("%s: %+v", f, cfg)
		}
	}
	p := filepath.Join(t.TempDir(), "containerd.toml")
	os.WriteFile(p, []byte("version = 3\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"), 0o644)
	if _, err := LoadConfig(p); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "a containerd config without") {
		t.Errorf("a containerd config without the plugin's table: %v", err)
	}
}

// The plugin's table: the defaults round-trip through it; a key Config
// lacks is refused, naming it (containerd itself would only warn).
func TestConfigFromTable(t *testing.T) {
	cfg, err := ConfigFromTable(DefaultTable())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("defaults through the table: %+v, want %+v", cfg, DefaultConfig())
	}
	tab := DefaultTable()
	tab["verify_keys"] = []any{"/etc/keys/a.pub"}
	tab["labels"] = map[string]any{"a": "b"}
	tab["max_layer_bytes"] = int64(4096)
	cfg, err = ConfigFromTable(tab)
	if err != nil || len(cfg.VerifyKeys) != 1 || cfg.Labels["a"] != "b" || cfg.MaxLayerBytes != 4096 || !cfg.Pin {
		t.Errorf("set keys: %+v, %v", cfg, err)
	}
	tab = DefaultTable()
	tab["verify_key"] = []any{"/etc/keys/a.pub"}
	if _, err := ConfigFromTable(tab); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "verify_key") {
		t.Errorf("unknown key verify_key: %v; want refused, naming it", err)
	}
}

// pull_timeout: a duration, 10 minutes unless set; 0 or less is refused
// (a pull must end).
func TestPullTimeoutConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.toml")
	for in, want := range map[string]time.Duration{"": DefaultPullTimeout, "pull_timeout = \"90s\"\n": 90 * time.Second} {
		os.WriteFile(p, []byte(in), 0o644)
		cfg, err := LoadConfig(p)
		if err == nil {
			_, err = cfg.Settings()
		}
		if err != nil || cfg.PullTimeout != want {
			t.Errorf("%q: %v, %v; want %v", in, cfg.PullTimeout, err, want)
		}
	}
	for _, bad := range []string{"pull_timeout = \"0s\"\n", "pull_timeout = \"-1m\"\n", "pull_timeout = \"soon\"\n"} {
		os.WriteFile(p, []byte(bad), 0o644)
		cfg, err := LoadConfig(p)
		if err == nil {
			_, err = cfg.Settings()
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v; want refused", bad, err)
		}
	}
}
