package fetcher

import (
	"context"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

// RegistryOptions configure the registry fallback like ctr's flags.
type RegistryOptions struct {
	// HostsDir is a containerd hosts directory (hosts.toml per registry),
	// as --hosts-dir and containerd's config_path read it.
	HostsDir string
	// PlainHTTP talks HTTP to registries without a hosts.toml saying otherwise.
	PlainHTTP bool
	// User is "user" or "user:password", for every registry.
	User string
	// DockerConfig is a docker config.json read for credentials when User
	// is empty; "" means $DOCKER_CONFIG/config.json or ~/.docker/config.json.
	DockerConfig string
}

// NewRegistryResolver returns containerd's docker resolver configured the
// way ctr configures it (hosts.toml, plain HTTP, credentials).
func NewRegistryResolver(ctx context.Context, o RegistryOptions) (remotes.Resolver, error) {
	creds := func(host string) (string, string, error) { return "", "", nil }
	if o.User != "" {
		user, secret, _ := strings.Cut(o.User, ":")
		creds = func(string) (string, string, error) { return user, secret, nil }
	} else {
		dc, err := loadDockerConfig(o.DockerConfig)
		if err != nil {
			return nil, err
		}
		creds = dc.credentials
	}
	hostOptions := config.HostOptions{Credentials: creds}
	if o.PlainHTTP {
		hostOptions.DefaultScheme = "http"
	}
	if o.HostsDir != "" {
		hostOptions.HostDir = config.HostDirFromRoot(o.HostsDir)
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, hostOptions)}), nil
}
