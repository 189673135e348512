package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"text/template"

	"github.com/pelletier/go-toml/v2"
)

// criPlugins are disabled together for DisableCRI. The podsandbox controller
// is included because it requires the CRI runtime plugin and would otherwise
// log a failed init on every start.
var criPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
}

// writeConfig writes d.ConfigPath. Version 3 is used on purpose (containerd
// 2.4 migrates it to 4 at load, logging one warning) because callers' plugin
// snippets are written in the widely documented v3 layout.
//
// Every path the daemon would otherwise take from the host (/opt/containerd,
// /var/run/nri, TMPDIR) is pointed into d.Dir so parallel daemons in
// parallel test packages never share state.
func (d *Daemon) writeConfig(opts DaemonOptions) error {
	if opts.ConfigFile != "" {
		return d.templateConfig(opts.ConfigFile)
	}
	var disabled []string
	if opts.DisableCRI {
		disabled = criPlugins
	}
	var b bytes.Buffer
	q := strconv.Quote // TOML basic strings accept Go's quoting for plain paths
	fmt.Fprintf(&b, "version = 3\nroot = %s\nstate = %s\ntemp = %s\n",
		q(d.Root), q(d.State), q(filepath.Join(d.Dir, "tmp")))
	fmt.Fprintf(&b, "disabled_plugins = [")
	for i, p := range disabled {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q(p))
	}
	b.WriteString("]\n")
	// ExtraConfig goes in an imported file rather than being appended: top-level
	// keys in it then cannot fall into our last table, and a [plugins."X"]
	// table in it replaces ours for X instead of being a duplicate-table error.
	if opts.ExtraConfig != "" {
		extra := filepath.Join(d.Dir, "extra.toml")
		body := opts.ExtraConfig
		if !hasVersion.MatchString(body) {
			// Without a version an import is treated as v1 and its plugin
			// names get rewritten.
			body = "version = 3\n" + body
		}
		if err := os.WriteFile(extra, []byte(body), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&b, "imports = [%s]\n", q(extra))
	}
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", q(d.Address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", q(d.Address+".ttrpc"))
	fmt.Fprintf(&b, "\n[debug]\n  level = \"debug\"\n  address = %s\n", q(filepath.Join(d.Dir, "debug.sock")))
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %s\n", q(filepath.Join(d.Dir, "opt")))
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.nri.v1.nri\"]\n  socket_path = %s\n", q(filepath.Join(d.Dir, "nri.sock")))
	return os.WriteFile(d.ConfigPath, b.Bytes(), 0o644)
}

var hasVersion = regexp.MustCompile(`(?m)^\s*version\s*=`)

// templateConfig expands a caller's complete config file with text/template
// ({{.Dir}}, {{.Root}}, {{.State}}, {{.Address}}), since those paths only
// exist once StartDaemon has made the temp dir. If the result names its own
// root, state or gRPC address, the Daemon fields follow it so readiness
// checks and Ctr talk to the right socket.
func (d *Daemon) templateConfig(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tmpl, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		return err
	}
	var parsed struct {
		Root, State string
		GRPC        struct{ Address string } `toml:"grpc"`
		Plugins     map[string]struct{ Address string }
	}
	if err := toml.Unmarshal(b.Bytes(), &parsed); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	d.Root = orDefault(parsed.Root, d.Root)
	d.State = orDefault(parsed.State, d.State)
	d.Address = orDefault(parsed.GRPC.Address, d.Address)
	// A version 4 file sets the address on the grpc server plugin instead.
	d.Address = orDefault(parsed.Plugins["io.containerd.server.v1.grpc"].Address, d.Address)
	return os.WriteFile(d.ConfigPath, b.Bytes(), 0o644)
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
