package fetcher

import (
	"context"
	"slices"
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
	// PlainHTTPHosts talks HTTP to these registries alone (host or
	// host:port), where no hosts.toml says otherwise.
	PlainHTTPHosts []string
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
	hosts := config.ConfigureHosts(ctx, hostOptions)
	if len(o.PlainHTTPHosts) > 0 && !o.PlainHTTP {
		plain := hostOptions
		plain.DefaultScheme = "http"
		plainHosts := config.ConfigureHosts(ctx, plain)
		all := hosts
		hosts = func(host string) ([]docker.RegistryHost, error) {
			if slices.Contains(o.PlainHTTPHosts, host) {
				return plainHosts(host)
			}
			return all(host)
		}
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), nil
}
