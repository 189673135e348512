package fetcher

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

// dockerConfig is the part of ~/.docker/config.json that holds static
// credentials. Credential helpers (credsStore, credHelpers) run external
// programs and are not consulted.
type dockerConfig struct {
	Auths map[string]struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auths"`
}

func loadDockerConfig(path string) (*dockerConfig, error) {
	if path == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return &dockerConfig{}, nil
			}
			dir = filepath.Join(home, ".docker")
		}
		path = filepath.Join(dir, "config.json")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &dockerConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	var c dockerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("docker config %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return &c, nil
}

// credentials answers containerd's per-host credential callback. Keys are
// tried in sorted order so the answer never depends on map order.
func (c *dockerConfig) credentials(host string) (string, string, error) {
	keys := make([]string, 0, len(c.Auths))
	for k := range c.Auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := c.Auths[key]
		if configHost(key) != host && !(host == "registry-1.docker.io" && configHost(key) == "docker.io") {
			continue
		}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("docker config auth for %s: %w", key, err)
			}
			user, secret, _ := strings.Cut(string(raw), ":")
			return user, secret, nil
		}
		return a.Username, a.Password, nil
	}
	return "", "", nil
}

// configHost reduces a config.json key ("https://index.docker.io/v1/",
// "registry.local:5000") to a host name as containerd passes it.
func configHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "index.docker.io" {
		return "docker.io"
	}
	return h
}
