// Package plugin_test holds the integration tests of the seeds-directory
// service in both of its forms: the containerd plugin built into
// containerd-seed, and `ctr-seed serve` beside a stock containerd. Every
// test starts its own private daemon(s); nothing is mocked.
package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

const (
	// pluginID is the plugin's full name: its config section and the name
	// of its root dir below containerd's root.
	pluginID = "io.containerd.seed.v1.importer"
	// seedVersion is stamped into containerd-seed so --version can be checked.
	seedVersion = "v0.0.0-plugintest"

	labelPinned  = "io.cri-containerd.pinned"
	labelManaged = "io.cri-containerd.image"

	// importWait bounds every "until it is imported" poll.
	importWait = 30 * time.Second
)

var (
	bins           harness.Bins
	ctrSeed        string // ctr-seed, built by the harness
	containerdSeed string // containerd-seed, built here (the harness cannot pass ldflags)
	moduleRoot     string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if moduleRoot, err = findModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if bins, err = harness.BinariesMain(); err != nil {
		fmt.Fprintf(os.Stderr, "containerd binaries: %v\n", err)
		return 1
	}
	if ctrSeed, err = harness.BuildCommandMain("./cmd/ctr-seed"); err != nil {
		fmt.Fprintf(os.Stderr, "building ctr-seed: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "plugintest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if containerdSeed, err = buildContainerdSeed(dir); err != nil {
		fmt.Fprintf(os.Stderr, "building containerd-seed: %v\n", err)
		return 1
	}
	return m.Run()
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + dir)
		}
	}
}

// buildContainerdSeed builds ./cmd/containerd-seed the way the harness
// builds containerd (static, containerd's version stamped in) and the
// Makefile builds it (ctr-seed's version stamped in), once per process.
func buildContainerdSeed(dir string) (string, error) {
	out := filepath.Join(dir, "containerd-seed")
	ldflags := "-X github.com/containerd/containerd/v2/version.Version=" + strings.TrimPrefix(bins.Version, "v") +
		" -X main.seedVersion=" + seedVersion
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/containerd-seed")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, b)
	}
	return out, nil
}

// --- seeds -----------------------------------------------------------------

// uniqueImage is testseed's standard image plus a layer unique to the test
// and name, so its content is in no daemon yet.
func uniqueImage(t *testing.T, name string, docker bool, c testseed.Compression) *testseed.Built {
	t.Helper()
	p := platforms.DefaultSpec()
	img := testseed.Standard(name, p, docker, c)
	img.Layers = append(img.Layers, testseed.Layer{Compression: c, Files: []testseed.File{
		{Name: "etc/test-name", Content: []byte(t.Name() + " " + name)},
	}})
	b, err := testseed.Build(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ociSeed is an OCI image-layout tar of b, compressed as a whole with c.
func ociSeed(t *testing.T, b *testseed.Built, c testseed.Compression) []byte {
	t.Helper()
	var s testseed.Seed
	s.Add(b.Name, b.Manifest, b.Blobs)
	return archive(t, c, s.WriteOCITar)
}

// dockerSeed is a `docker save` tar of b under repoTag, compressed with c.
func dockerSeed(t *testing.T, repoTag string, b *testseed.Built, c testseed.Compression) []byte {
	t.Helper()
	return archive(t, c, func(w io.Writer) error {
		return testseed.WriteDockerTar(w, []testseed.DockerImage{{RepoTags: []string{repoTag}, Built: b}})
	})
}

func archive(t *testing.T, c testseed.Compression, fn func(io.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := testseed.Compress(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// corrupt flips one byte in the middle of b's last layer (the one unique
// to the test), keeping the digests in the manifest: a seed of it is
// well-formed but fails verification.
func corrupt(b *testseed.Built) {
	l := b.Layers[len(b.Layers)-1].Digest
	blob := bytes.Clone(b.Blobs[l])
	blob[len(blob)/2] ^= 0xff
	b.Blobs[l] = blob
}

// dropIn writes data under a hidden name in dir and renames it into place,
// the documented way to add a seed.
func dropIn(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".partial")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// writeSlowly writes data in place, the second half after pause, keeping
// the file open (for writing) all along: a half-written seed sits in the
// directory, unchanged, for longer than the service's quiet period.
func writeSlowly(t *testing.T, path string, data []byte, pause time.Duration) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if _, err := f.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if _, err := f.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// --- logs ------------------------------------------------------------------

// lastRun is the part of a harness daemon log written by its latest start.
func lastRun(log string) string {
	if i := strings.LastIndex(log, "=== harness: "); i >= 0 {
		return log[i:]
	}
	return log
}

// seedField matches a logrus text field seed=<name>, quoted or not.
func seedField(seed string) *regexp.Regexp {
	return regexp.MustCompile(`(^|\s)seed="?` + regexp.QuoteMeta(seed) + `"?(\s|$)`)
}

// seedLines returns the log lines about seed that carry msg (and, if level
// is set, level=<level>).
func seedLines(log, level, msg, seed string) []string {
	re := seedField(seed)
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `msg="`+msg+`"`) || !re.MatchString(l) {
			continue
		}
		if level != "" && !strings.Contains(l, "level="+level) {
			continue
		}
		out = append(out, l)
	}
	return out
}

func imported(log, seed string) int { return len(seedLines(log, "info", "seed imported", seed)) }

// errorLines are every level=error line naming seed.
func errorLines(log, seed string) []string {
	re := seedField(seed)
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=error") && (re.MatchString(l) || strings.Contains(l, seed)) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or timeout passes, then
// fails with the last reason cond gave.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// --- images ----------------------------------------------------------------

func nsCtx(ns string) context.Context {
	return namespaces.WithNamespace(context.Background(), ns)
}

// checkImage returns why name is not (yet) an image of ns carrying labels
// and unpacked into overlayfs, or nil.
func checkImage(c *client.Client, ns, name string, labels map[string]string) error {
	ctx := nsCtx(ns)
	img, err := c.ImageService().Get(ctx, name)
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	for k, v := range labels {
		if got, ok := img.Labels[k]; !ok || got != v {
			return fmt.Errorf("image %s: label %s=%q, want %q (labels %v)", name, k, got, v, img.Labels)
		}
	}
	ok, err := client.NewImage(c, img).IsUnpacked(ctx, "overlayfs")
	if err != nil {
		return fmt.Errorf("image %s: IsUnpacked: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("image %s: not unpacked into overlayfs", name)
	}
	return nil
}

func checkImages(c *client.Client, ns string, names []string, labels map[string]string) error {
	for _, n := range names {
		if err := checkImage(c, ns, n, labels); err != nil {
			return err
		}
	}
	return nil
}

func imageNames(t *testing.T, c *client.Client, ns string) []string {
	t.Helper()
	imgs, err := c.ImageService().List(nsCtx(ns))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.Name)
	}
	return out
}

// assertNoLeases checks that no ctr-seed lease is left in ns (a failed
// import must not leave one behind).
func assertNoLeases(t *testing.T, c *client.Client, ns string) {
	t.Helper()
	ls, err := c.LeasesService().List(nsCtx(ns), fmt.Sprintf("labels.%q", importer.LeaseLabel))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 0 {
		t.Errorf("ctr-seed leases left behind in %s: %v", ns, ls)
	}
}

// --- state -----------------------------------------------------------------

type seedState struct {
	Seeds map[string]struct {
		Images []string `json:"images"`
		Error  string   `json:"error"`
	} `json:"seeds"`
}

func readState(t *testing.T, dir string) seedState {
	t.Helper()
	var s seedState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("state %s: %v\n%s", dir, err, b)
	}
	return s
}

// assertState checks that the state in dir records each seed with exactly
// the images given and no error.
func assertState(t *testing.T, dir string, want map[string][]string) {
	t.Helper()
	s := readState(t, dir)
	for seed, imgs := range want {
		r, ok := s.Seeds[seed]
		switch {
		case !ok:
			t.Errorf("state.json in %s does not list seed %s (it has %v)", dir, seed, s.Seeds)
		case r.Error != "":
			t.Errorf("state.json: seed %s recorded as failed: %s", seed, r.Error)
		case strings.Join(r.Images, ",") != strings.Join(imgs, ","):
			t.Errorf("state.json: seed %s has images %v, want %v", seed, r.Images, imgs)
		}
	}
}
