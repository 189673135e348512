// Package testregistry runs a real CNCF Distribution v3 registry in-process
// on a loopback port for integration tests.
package testregistry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// Register only the pieces we use: the htpasswd access controller and
	// the filesystem storage driver (no cloud drivers).
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Options configures a test registry.
type Options struct {
	// User and Password, if User is set, enable htpasswd basic auth.
	User, Password string
	// Dir is the storage root; defaults to t.TempDir().
	Dir string
	// Wrap, if set, is given the registry's handler and serves every
	// request in its place: a test's hostile answers (a tampered or
	// stalled body, a lying size) in front of a real registry. The access
	// log records what Wrap answered.
	Wrap func(http.Handler) http.Handler
}

// Registry is a running in-process registry.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string

	user, password string
	client         *http.Client

	mu  sync.Mutex
	log []Request
}

var quietLogs sync.Once

// Start starts the registry on a random loopback port over plain HTTP and
// stops it at t.Cleanup.
//
// The registry logs through the global logrus logger; Start lowers its level
// to Fatal (once per process): it logs every 404 answer (a push's existence
// check) at Error, which is noise in test and bench output.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	quietLogs.Do(func() {
		if logrus.GetLevel() > logrus.FatalLevel {
			logrus.SetLevel(logrus.FatalLevel)
		}
	})

	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"delete":     configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	cfg.HTTP.Secret = "testregistry-secret"
	if opts.User != "" {
		htpasswd, err := writeHtpasswd(t.TempDir(), opts.User, opts.Password)
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "testregistry",
			"path":  htpasswd,
		}}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testregistry: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)

	r := &Registry{
		Host:     ln.Addr().String(),
		user:     opts.User,
		password: opts.Password,
		client:   &http.Client{Transport: &http.Transport{}},
	}
	var h http.Handler = app
	if opts.Wrap != nil {
		h = opts.Wrap(app)
	}
	srv := &http.Server{
		Handler:           r.accessLog(h),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testregistry: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		_ = app.Shutdown()
		cancel()
		r.client.CloseIdleConnections()
	})
	return r
}

// URL returns the base URL of the registry, "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return "http://" + r.Host }

// writeHtpasswd writes a bcrypt htpasswd file for one user into dir.
func writeHtpasswd(dir, user, password string) (string, error) {
	// MinCost: the registry runs bcrypt on every authenticated request.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("bcrypt: %w", err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
