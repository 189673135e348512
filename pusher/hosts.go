package pusher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

// HostsOptions say which mirror the nodes pull from.
type HostsOptions struct {
	// Mirror is HOST[:PORT][/PREFIX], as push's To.
	Mirror string
	// Flat: the mirror's layout drops the registry host (push --flat).
	Flat bool
	// PlainHTTP: the mirror speaks HTTP.
	PlainHTTP bool
	// Force overwrites existing hosts.toml files.
	Force bool
}

// WriteHosts writes dir/<registry>/hosts.toml for each registry: the
// mirror first, for pull and resolve, with override_path so the layout
// push wrote (HOST/PREFIX/<registry>/<path>) is found; the registry's own
// server after it, for nodes that can reach it. It returns the files.
func WriteHosts(dir string, registries []string, o HostsOptions) ([]string, error) {
	host, prefix, _ := strings.Cut(strings.TrimSuffix(o.Mirror, "/"), "/")
	if host == "" {
		return nil, fmt.Errorf("hosts: no mirror: %w", errdefs.ErrInvalidArgument)
	}
	scheme := "https"
	if o.PlainHTTP {
		scheme = "http"
	}
	var out []string
	for _, reg := range registries {
		if reg == "" || strings.ContainsAny(reg, `/\`) || reg == "." || reg == ".." {
			return out, fmt.Errorf("hosts: registry %q: not a host name: %w", reg, errdefs.ErrInvalidArgument)
		}
		path := "/v2"
		if prefix != "" {
			path += "/" + prefix
		}
		if !o.Flat {
			path += "/" + PathOf(reg)
		}
		body := fmt.Sprintf(`# Written by ctr-seed hosts: pull %s's images from the site mirror %s
# first (the layout ctr-seed push wrote there), then from %s itself.
server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
  override_path = true
`, reg, o.Mirror, reg, upstream(reg), scheme+"://"+host+path)
		p := filepath.Join(dir, reg, "hosts.toml")
		if _, err := os.Lstat(p); err == nil && !o.Force {
			return out, fmt.Errorf("hosts: %s exists (--force to overwrite): %w", p, errdefs.ErrAlreadyExists)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return out, err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			return out, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// upstream is a registry's own server, as containerd names docker.io's.
func upstream(reg string) string {
	if reg == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + reg
}
