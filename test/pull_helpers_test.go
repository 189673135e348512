package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pullSeq makes every pullImage distinct, even two built by one test.
var pullSeq atomic.Int64

// pullImage is testseed's standard image with a file unique to this call
// in every layer, so that no blob of it (layers included, not only the top
// one as with uniqueImage) is in the daemon already: containerd shares
// blobs across namespaces and never fetches a blob it has.
func pullImage(t *testing.T, tag string, p ocispec.Platform, docker bool, c testseed.Compression) testseed.Image {
	t.Helper()
	img := testseed.Standard("", p, docker, c)
	id := pullSeq.Add(1)
	for i := range img.Layers {
		img.Layers[i].Files = append(slices.Clone(img.Layers[i].Files), testseed.File{
			Name:    fmt.Sprintf("ctr-seed-test-%d", i),
			Content: fmt.Appendf(nil, "%s %s %s #%d layer %d\n", t.Name(), tag, p.Architecture, id, i),
		})
	}
	return img
}

// pullFresh builds a pullImage (OCI media types).
func pullFresh(t *testing.T, tag string, p ocispec.Platform, c testseed.Compression) *testseed.Built {
	t.Helper()
	return testutil.Build(t, pullImage(t, tag, p, false, c))
}

// pullIndex is a two-platform index (amd64, arm64) of pullFresh images.
func pullIndex(t *testing.T, tag string) (ocispec.Descriptor, map[digest.Digest][]byte, *testseed.Built, *testseed.Built) {
	t.Helper()
	a := pullFresh(t, tag, amd64, testseed.Gzip)
	b := pullFresh(t, tag, arm64, testseed.Gzip)
	idx, blobs, err := indexFromBuilt(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return idx, blobs, a, b
}

// pullRegistry runs a registry holding root (and its blobs) as
// repo:tag, with an empty access log.
func pullRegistry(t *testing.T, opts testregistry.Options, repo, tag string, root ocispec.Descriptor, blobs map[digest.Digest][]byte) *testregistry.Registry {
	t.Helper()
	reg := testregistry.Start(t, opts)
	if err := reg.Push(context.Background(), repo, tag, root, blobs); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	return reg
}

// pullRun runs `ctr-seed pull args...` against the test daemon in ns. The
// docker config is an empty directory, so the developer's
// ~/.docker/config.json never lends credentials.
func pullRun(t *testing.T, ns string, args ...string) result {
	t.Helper()
	return runCtrSeed(t, harness.Cmd{
		Argv:    append([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "pull"}, args...),
		Env:     []string{"DOCKER_CONFIG=" + t.TempDir()},
		Timeout: 3 * time.Minute,
	})
}

// mustPull runs ctr-seed pull and fails the test unless it exits 0 with
// nothing on stderr.
func mustPull(t *testing.T, ns string, args ...string) result {
	t.Helper()
	r := pullRun(t, ns, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("ctr-seed pull %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// pullFailed checks that a pull of refs (all named on the command line)
// exited 1, printing one stderr line per failed ref — "ctr-seed: pulling
// REF: ..." — and then, if several failed, the tally line. It returns the failure lines by ref;
// each must contain every string of want (case-insensitive).
func pullFailed(t *testing.T, r result, total int, failed []string, want ...string) map[string]string {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	lines := pullErrorLines(t, r.stderr)
	// A tally line follows only when several images failed.
	want1 := len(failed)
	tally := fmt.Sprintf("ctr-seed: %d of %d images failed", len(failed), total)
	if len(failed) > 1 {
		want1++
	}
	if len(lines) != want1 || (len(failed) > 1 && lines[len(lines)-1] != tally) {
		t.Fatalf("stderr: want one line per failed image (%d) and a tally if several, got %d lines:\n%s", len(failed), len(lines), r.stderr)
	}
	out := map[string]string{}
	for i, ref := range failed {
		line := lines[i]
		if !strings.HasPrefix(line, "ctr-seed: pulling "+ref+": ") {
			t.Errorf("stderr line %d: %q, want it to start with %q", i, line, "ctr-seed: pulling "+ref+": ")
		}
		for _, w := range want {
			if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
				t.Errorf("stderr line %d does not mention %q: %s", i, w, line)
			}
		}
		out[ref] = line
	}
	return out
}

// pullErrorLines returns ctr-seed's stderr lines: each failure is one
// line, and containerd's own log lines never reach stderr without --debug.
func pullErrorLines(t *testing.T, stderr string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
}

// summary is one "imported NAME DIGEST: X from seed, Y from registry, Ts" line.
type pullSummary struct {
	names, target, fromSeed, fromRegistry string
}

var (
	pullSummaryRE = harness.SummaryRE
	pullWroteRE   = harness.WroteRE
)

// parsePullOutput splits ctr-seed's plain (non-terminal) output into
// summary lines and, per short digest, the source of each blob written.
func parsePullOutput(t *testing.T, stdout string) ([]pullSummary, map[string]string) {
	t.Helper()
	var sums []pullSummary
	wrote := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if m := pullSummaryRE.FindStringSubmatch(line); m != nil {
			if m[1] != "pulled" {
				t.Errorf("summary %q: want pulled", line)
			}
			sums = append(sums, pullSummary{m[2], m[3], m[4], m[5]})
			continue
		}
		if m := pullWroteRE.FindStringSubmatch(line); m != nil {
			if _, dup := wrote[m[1]]; dup {
				t.Errorf("blob %s written twice:\n%s", m[1], stdout)
			}
			wrote[m[1]] = m[3]
			continue
		}
		if line != "" {
			t.Errorf("unexpected output line %q", line)
		}
	}
	return sums, wrote
}

func pullSize(ds ...ocispec.Descriptor) (n int64) {
	for _, d := range ds {
		n += d.Size
	}
	return n
}

// checkPullOutput checks the one summary line of a pull of name (target)
// and that exactly the blobs fromSeed and fromRegistry were written, each
// from the source given, with the summary's byte counts their sizes.
func checkPullOutput(t *testing.T, r result, name string, target digest.Digest, fromSeed, fromRegistry []ocispec.Descriptor) {
	t.Helper()
	sums, wrote := parsePullOutput(t, r.stdout)
	want := pullSummary{name, target.String(), harness.SizeText(pullSize(fromSeed...)), harness.SizeText(pullSize(fromRegistry...))}
	if len(sums) != 1 || sums[0] != want {
		t.Errorf("summary lines %+v, want one %+v\nstdout:\n%s", sums, want, r.stdout)
	}
	wantWrote := map[string]string{}
	for _, d := range fromSeed {
		wantWrote[testutil.Short(d.Digest)] = "seed"
	}
	for _, d := range fromRegistry {
		wantWrote[testutil.Short(d.Digest)] = "registry"
	}
	for d, src := range wantWrote {
		if wrote[d] != src {
			t.Errorf("blob %s: written from %q, want from %s", d, wrote[d], src)
		}
	}
	for d, src := range wrote {
		if _, ok := wantWrote[d]; !ok {
			t.Errorf("blob %s written from %s, but it should not have been fetched", d, src)
		}
	}
}

// pullBlobs is b's manifest, config and layers.
func pullBlobs(b *testseed.Built) []ocispec.Descriptor {
	return append([]ocispec.Descriptor{b.Manifest, b.Config}, b.Layers...)
}

// checkPulled checks that ns holds exactly one image, name, whose target is
// root, with every blob of b (the platform's image) in the content store
// and unpacked into overlayfs (or not, with unpacked false).
func checkPulled(t *testing.T, ns, name string, root ocispec.Descriptor, b *testseed.Built, unpacked bool) {
	t.Helper()
	ctx := nsCtx(ns)
	c := dclient(t)
	imgs := imageMap(t, ns)
	img, ok := imgs[name]
	if !ok || len(imgs) != 1 {
		t.Fatalf("images %v, want only %s", keys(imgs), name)
	}
	if img.Target.Digest != root.Digest || img.Target.MediaType != root.MediaType || img.Target.Size != root.Size {
		t.Errorf("%s: target %s %s %d, want %s %s %d", name, img.Target.Digest, img.Target.MediaType, img.Target.Size,
			root.Digest, root.MediaType, root.Size)
	}
	p := platforms.Only(*b.Manifest.Platform)
	available, _, _, missing, err := images.Check(ctx, c.ContentStore(), img.Target, p)
	if err != nil || !available || len(missing) != 0 {
		t.Errorf("%s: content check: available %v, missing %v, err %v", name, available, missing, err)
	}
	ci := client.NewImageWithPlatform(c, img, p)
	isUnpacked, err := ci.IsUnpacked(ctx, "overlayfs")
	if err != nil {
		t.Fatal(err)
	}
	chain := snapshotChain(t, ns)
	if !unpacked {
		if isUnpacked || len(chain) != 0 {
			t.Errorf("%s: unpacked (%v), want no snapshots: %v", name, isUnpacked, chain)
		}
		return
	}
	if !isUnpacked {
		t.Errorf("%s: not unpacked for %s", name, platforms.Format(*b.Manifest.Platform))
	}
	top := identity.ChainID(b.DiffIDs).String()
	if len(chain) != len(b.Layers) || !slices.ContainsFunc(chain, func(s string) bool { return strings.HasPrefix(s, top+"<-") }) {
		t.Errorf("%s: committed snapshots %v, want %d ending in %s", name, chain, len(b.Layers), top)
	}
}

// pullNoContent checks that ns's content store holds none of ds.
func pullNoContent(t *testing.T, ns string, ds ...ocispec.Descriptor) {
	t.Helper()
	cs := dclient(t).ContentStore()
	for _, d := range ds {
		if _, err := cs.Info(nsCtx(ns), d.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s (%s) left in the content store (err %v)", d.Digest, d.MediaType, err)
		}
	}
}

// pullBlobGets checks that the registry served exactly want (each once)
// through GET /v2/.../blobs/, and no request at all named a digest of never.
func pullBlobGets(t *testing.T, reg *testregistry.Registry, want []ocispec.Descriptor, never []ocispec.Descriptor) {
	t.Helper()
	got := reg.BlobGets()
	var w []digest.Digest
	for _, d := range want {
		w = append(w, d.Digest)
	}
	slices.Sort(got)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("registry blob GETs:\n  %v\nwant:\n  %v", got, w)
	}
	for _, req := range reg.Requests() {
		for _, d := range never {
			if strings.Contains(req.Path, d.Digest.Encoded()) {
				t.Errorf("registry asked for %s (%s), which it must not serve: %s %s %d", d.Digest, d.MediaType, req.Method, req.Path, req.Status)
			}
		}
	}
}

// pullSaw reports whether the registry answered method path with status.
func pullSaw(reg *testregistry.Registry, method, path string, status int) bool {
	for _, r := range reg.Requests() {
		if r.Method == method && r.Path == path && r.Status == status {
			return true
		}
	}
	return false
}

// pullHostsToml writes dir/host/hosts.toml sending host's pulls and
// resolves to reg over plain HTTP, as containerd's config_path reads it.
func pullHostsToml(t *testing.T, dir, host string, reg *testregistry.Registry) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.URL(), reg.URL())
	if err := os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}
