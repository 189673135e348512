// Package plugin_test holds the integration tests of the seeds-directory
// service in both of its forms: the containerd plugin built into
// containerd-seed, and `ctr-seed serve` beside a stock containerd. Every
// test starts its own private daemon(s); nothing is mocked.
package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
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
	containerdSeed string // containerd-seed, with containerd's and ctr-seed's versions stamped in
	moduleRoot     string
)

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	var err error
	if moduleRoot, err = harness.ModuleRootMain(); err != nil {
		return err
	}
	if ctrSeed, bins, err = harness.CtrSeedMain(); err != nil {
		return err
	}
	// As the Makefile builds it, with containerd's version as well.
	containerdSeed, err = harness.BuildCommandMain("./cmd/containerd-seed", bins.VersionLDFlag(), "-X main.seedVersion="+seedVersion)
	return err
}

// --- seeds -----------------------------------------------------------------

// uniqueImage is testutil.UniqueImage for this machine's platform.
func uniqueImage(t *testing.T, name string, docker bool, c testseed.Compression) *testseed.Built {
	t.Helper()
	return testutil.UniqueImage(t, name, platforms.DefaultSpec(), docker, c)
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
	return testutil.Archive(t, c, fn)
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
	return pollFor(t, timeout, 100*time.Millisecond, what, cond)
}

// pollFor is waitFor polling every interval: for moments that last only
// milliseconds (an ingest under way).
func pollFor(t *testing.T, timeout, interval time.Duration, what string, cond func() error) time.Duration {
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
		time.Sleep(interval)
	}
}

var tail = testutil.Tail

// step runs f as a subtest that the rest of t builds on: if it fails, t
// stops there.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// --- images ----------------------------------------------------------------

var nsCtx = harness.NSContext

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
	return testutil.Keys(harness.Images(t, c, ns))
}

// assertNoLeases checks that no ctr-seed lease is left in ns (a failed
// import must not leave one behind).
var assertNoLeases = harness.AssertNoSeedLeases

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
	// The records land before the service writes state.json: wait until
	// it lists every seed wanted, then check what it says of each.
	waitFor(t, importWait, "state.json lists the seeds", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil {
			return err
		}
		var s seedState
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		for seed := range want {
			if _, ok := s.Seeds[seed]; !ok {
				return fmt.Errorf("no record of %s yet", seed)
			}
		}
		return nil
	})
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
