package harness

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
)

// TestDaemon walks the main life cycle: start, talk to it (client and ctr),
// make a real overlay mount under its dir, restart, and clean up.
func TestDaemon(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	bins := Binaries(t)
	t.Logf("binaries (%s) ready in %v", bins.Version, time.Since(t0))

	t0 = time.Now()
	d := StartDaemon(t, DaemonOptions{DisableCRI: true})
	t.Logf("daemon started in %v at %s", time.Since(t0), d.Address)
	c := d.Client(t)

	checkVersion(t, c, bins.Version)
	ps, err := c.IntrospectionService().Plugins(ctx, "type==io.containerd.snapshotter.v1,id==overlayfs")
	if err != nil || len(ps.Plugins) != 1 || ps.Plugins[0].InitErr != nil {
		t.Fatalf("overlayfs snapshotter not usable: err=%v plugins=%v", err, ps.GetPlugins())
	}
	ps, err = c.IntrospectionService().Plugins(ctx, "id==cri")
	if err != nil || len(ps.Plugins) != 0 {
		t.Errorf("DisableCRI: CRI plugin still listed: err=%v plugins=%v", err, ps.GetPlugins())
	}

	// A two-layer snapshot gives a real overlay mount: proof that the root
	// is on an overlay-capable filesystem, and something Cleanup must undo.
	// gc.root labels keep the garbage collector (which runs after the
	// restart below) from removing snapshots nothing else references.
	sn := c.SnapshotService("overlayfs")
	root := snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "harness"})
	if _, err := sn.Prepare(ctx, "base-active", "", root); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "base", "base-active", root); err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.Prepare(ctx, "top", "base", root)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		t.Fatalf("expected one overlay mount, got %+v", mounts)
	}
	target := filepath.Join(d.Dir, "mnt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount.All(mounts, target); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}

	if out, err := d.Ctr(t, "images", "ls"); err != nil || !strings.Contains(out, "REF") {
		t.Fatalf("ctr images ls: err=%v out=%q", err, out)
	}

	t0 = time.Now()
	d.Restart(t)
	t.Logf("daemon restarted in %v", time.Since(t0))
	checkVersion(t, c, bins.Version) // the old client reconnects by itself
	if _, err := sn.Stat(ctx, "top"); err != nil {
		t.Errorf("snapshot lost across restart: %v", err)
	}
	if !strings.Contains(d.Log(), "=== harness:") || strings.Count(d.Log(), "=== harness:") != 2 {
		t.Errorf("log should hold both runs:\n%s", testutil.Tail(d.Log(), 20))
	}

	if err := d.Cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after cleanup (err=%v)", d.Dir, err)
	}
	if mps, err := mountsUnder(d.Dir); err != nil || len(mps) != 0 {
		t.Errorf("mounts left under %s: %v (err=%v)", d.Dir, mps, err)
	}
}

// TestDaemonOptions covers ExtraConfig, ConfigFile, Kill and two daemons at
// once (their dirs, sockets and NRI sockets must not collide).
func TestDaemonOptions(t *testing.T) {
	t.Run("ExtraConfig+Kill", func(t *testing.T) {
		t.Parallel()
		d := StartDaemon(t, DaemonOptions{
			DisableCRI:  true,
			ExtraConfig: "disabled_plugins = [\"io.containerd.snapshotter.v1.native\"]\n",
		})
		c := d.Client(t)
		for _, id := range []string{"native", "cri"} {
			ps, err := c.IntrospectionService().Plugins(context.Background(), "id=="+id)
			if err != nil || len(ps.Plugins) != 0 {
				t.Errorf("%s should be disabled: err=%v plugins=%v", id, err, ps.GetPlugins())
			}
		}
		d.Kill(t)
		if err := ping(d.Address); err == nil {
			t.Fatal("daemon still answers after Kill")
		}
		d.Stop(t) // idempotent on a dead daemon
		d.Restart(t)
		checkVersion(t, c, d.Bins.Version)
	})
	t.Run("ConfigFile", func(t *testing.T) {
		t.Parallel()
		cfg := filepath.Join(t.TempDir(), "config.toml")
		body := "version = 3\nroot = \"{{.Root}}\"\nstate = \"{{.State}}\"\n" +
			"disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n" +
			"[grpc]\n  address = \"{{.Dir}}/custom.sock\"\n" +
			"[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{{.Dir}}/opt\"\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		d := StartDaemon(t, DaemonOptions{ConfigFile: cfg})
		if filepath.Base(d.Address) != "custom.sock" {
			t.Errorf("Address should follow the config file, got %s", d.Address)
		}
		if out, err := d.Ctr(t, "version"); err != nil || !strings.Contains(out, "Server:") {
			t.Errorf("ctr version: err=%v out=%q", err, out)
		}
	})
}

func TestBuildCommand(t *testing.T) {
	p := BuildCommand(t, "./cmd/ctr-seed")
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s not an executable: %v", p, err)
	}
	if again := BuildCommand(t, "./cmd/ctr-seed"); again != p {
		t.Errorf("second build gave %s, want memoised %s", again, p)
	}
	if root := ModuleRoot(t); !strings.HasPrefix(p, os.TempDir()) || root == "" {
		t.Errorf("unexpected paths: bin %s, root %s", p, root)
	}
}

// TestBuildCommandCgo: ctr-seed is built as make build builds it, with
// cgo, so it inflates layers with the system's zlib; the daemon is static.
func TestBuildCommandCgo(t *testing.T) {
	for pkg, want := range map[string]bool{"./cmd/ctr-seed": true, "./cmd/containerd-seed": false} {
		f, err := elf.Open(BuildCommand(t, pkg))
		if err != nil {
			t.Fatal(err)
		}
		libs, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.ContainsFunc(libs, func(l string) bool { return strings.HasPrefix(l, "libz.so") }); got != want {
			t.Errorf("%s links %v: libz %v, want %v", pkg, libs, got, want)
		}
	}
}

// TestBuildCommandLDFlags: ldflags reach the linker, and a build with
// them is kept apart from the plain one.
func TestBuildCommandLDFlags(t *testing.T) {
	plain := BuildCommand(t, "./cmd/ctr-seed")
	stamped := BuildCommand(t, "./cmd/ctr-seed", "-X main.version=v9.9.9-harness")
	if stamped == plain {
		t.Fatalf("a build with ldflags reused the plain one: %s", plain)
	}
	for bin, want := range map[string]string{plain: "dev", stamped: "v9.9.9-harness"} {
		r, err := Run(t.Context(), Cmd{Argv: []string{bin, "--version"}, Timeout: time.Minute})
		if err != nil || r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("%s --version: %v, %s; want it to say %s", bin, err, r, want)
		}
	}
}

// TestStart covers the async runner: output and exit code of a process
// left to finish, a signal's exit, Combined output, and the kill at cleanup.
func TestStart(t *testing.T) {
	p := Start(t, Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	r := p.Wait(t, 30*time.Second)
	if r.Code != 3 || r.Signal != 0 || r.Stdout != "out\n" || r.Stderr != "err\n" || !p.Exited() || p.Running() == nil {
		t.Errorf("sh exiting 3: %s (exited %v, running %v)", r, p.Exited(), p.Running())
	}

	p = Start(t, Cmd{Argv: []string{"sh", "-c", "echo a; echo b >&2; exec sleep 60"}, Combined: true})
	for p.Stdout() != "a\nb\n" {
		if p.Exited() {
			t.Fatalf("sleep exited early: %s", p.Result())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Running(); err != nil || p.Pid() <= 0 {
		t.Errorf("a sleeping process: running %v, pid %d", err, p.Pid())
	}
	r = p.Stop(t, 10*time.Second)
	if r.Signal != syscall.SIGTERM || r.Code != -1 || r.Stderr != "" {
		t.Errorf("after Stop: %s; want killed by SIGTERM, all output on stdout", r)
	}

	var left *Proc
	t.Run("leaves one running", func(t *testing.T) {
		left = Start(t, Cmd{Argv: []string{"sleep", "60"}})
	})
	if r := left.Result(); r.Signal != syscall.SIGKILL {
		t.Errorf("a process left running at cleanup: %s; want killed by SIGKILL", r)
	}
}

func checkVersion(t *testing.T, c *client.Client, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if v.Version != strings.TrimPrefix(want, "v") {
		t.Errorf("daemon reports %q, go.mod pins %q", v.Version, want)
	}
}

// TestEvents: a subscription is live when SubscribeEvents returns (an
// event published at once is recorded), Sync catches every event
// published before it, and EventTopics' stop misses none and records no
// canary.
func TestEvents(t *testing.T) {
	d := StartDaemon(t, DaemonOptions{DisableCRI: true})
	c := d.Client(t)
	const ns = "events"
	ctx := NSContext(ns)
	e := SubscribeEvents(t, c, ns, "/images/")
	stop := EventTopics(t, c, ns)
	img := images.Image{Name: "example.com/events:1", Target: ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}}
	if _, err := c.ImageService().Create(ctx, img); err != nil {
		t.Fatal(err)
	}
	if err := c.ImageService().Delete(ctx, img.Name); err != nil {
		t.Fatal(err)
	}
	e.Sync(t)
	var got []string
	for _, env := range e.All() {
		got = append(got, env.Topic)
	}
	if want := []string{"/images/create", "/images/delete"}; !slices.Equal(got, want) {
		t.Errorf("SubscribeEvents recorded %v, want %v", got, want)
	}
	if topics := stop(); !slices.Equal(topics, got) {
		t.Errorf("EventTopics recorded %v, want %v", topics, got)
	}
	// Nothing published: nothing recorded, and that is known at once.
	stop = EventTopics(t, c, ns)
	if topics := stop(); len(topics) != 0 {
		t.Errorf("EventTopics with nothing published: %v", topics)
	}
	e.Wait(t, time.Second, "events already recorded", func(envs []*events.Envelope) error {
		if len(envs) != 2 {
			return fmt.Errorf("%d events", len(envs))
		}
		return nil
	})
}
