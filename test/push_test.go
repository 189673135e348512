package test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
)

func pushRun(t *testing.T, args ...string) result {
	t.Helper()
	return runCtrSeed(t, harness.Cmd{Argv: append([]string{ctrSeed, "push"}, args...), Env: []string{"DOCKER_CONFIG=" + t.TempDir()}})
}

// skopeoDigest is the digest of what the registry serves for ref, as skopeo
// reads it.
func skopeoDigest(t *testing.T, ref string) (digest.Digest, error) {
	t.Helper()
	out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+ref).Output()
	if err != nil {
		return "", err
	}
	return digest.FromBytes(out), nil
}

func uploads(reg *testregistry.Registry) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPost && strings.Contains(r.Path, "/blobs/uploads") {
			n++
		}
	}
	return n
}

// push fills a real registry from seeds (OCI multi-arch, docker save),
// keeping every digest, under HOST/PREFIX/<registry>/<path>; a second push
// uploads nothing; layers another repository got in the same push are
// mounted; hosts writes hosts.toml files with which stock containerd
// nodes pull the images from the mirror, their own registry unreachable.
func TestPushAndHosts(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	idx, blobs, _, arm := pullIndex(t, "push-multi")
	var oci testseed.Seed
	oci.Add("registry.local/push/multi:1", idx, blobs)
	ociSeed := writeOCI(t, &oci, testseed.Uncompressed)
	d := uniqueImage(t, "", impHostPlatform(), true, testseed.Gzip)
	dockerSeed := writeDocker(t, []testseed.DockerImage{{RepoTags: []string{"registry.local/push/legacy:2"}, Built: d}}, testseed.Uncompressed)

	r := pushRun(t, "--to", reg.Host+"/site", "--plain-http", ociSeed, dockerSeed)
	if r.code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	multi := reg.Host + "/site/registry.local/push/multi:1"
	if got, err := skopeoDigest(t, multi); err != nil || got != idx.Digest {
		t.Errorf("skopeo %s: %v %s; want %s", multi, err, got, idx.Digest)
	}
	if got, err := skopeoDigest(t, reg.Host+"/site/registry.local/push/multi@"+arm.Manifest.Digest.String()); err != nil || got != arm.Manifest.Digest {
		t.Errorf("the arm64 image: %v %s", err, got)
	}
	legacy := reg.Host + "/site/registry.local/push/legacy:2"
	if _, err := skopeoDigest(t, legacy); err != nil {
		t.Errorf("skopeo %s: %v", legacy, err)
	}

	// Again: nothing to send.
	reg.Reset()
	r = pushRun(t, "--to", reg.Host+"/site", "--plain-http", ociSeed, dockerSeed)
	if r.code != 0 || uploads(reg) != 0 || !strings.Contains(r.stdout, ": 0 blobs uploaded") {
		t.Errorf("second push: exit %d, %d uploads\n%s", r.code, uploads(reg), r.stdout)
	}
	// The same image under another name in one push: its blobs are
	// mounted from the repository they went to first.
	var two testseed.Seed
	b := uniqueImage(t, "registry.local/push/first:1", impHostPlatform(), false, testseed.Gzip)
	two.Add(b.Name, b.Manifest, b.Blobs)
	two.Add("registry.local/push/second:1", b.Manifest, b.Blobs)
	r = pushRun(t, "--to", reg.Host+"/site", "--plain-http", writeOCI(t, &two, testseed.Uncompressed))
	t.Logf("mount push:\n%s", r.stdout)
	if r.code != 0 || !strings.Contains(r.stdout, "registry.local/push/second:1 → ") || strings.Contains(r.stdout, "second:1 → "+reg.Host+"/site/registry.local/push/second:1 ("+b.Manifest.Digest.String()+"): 0 blobs uploaded, 0 already there, 0 mounted") {
		t.Errorf("mounts: exit %d\n%s", r.code, r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, "second:1 → ") && !strings.Contains(l, ": 0 blobs uploaded") {
			t.Errorf("the second repository got uploads, not mounts: %s", l)
		}
	}

	// Nodes: stock containerd, pulling through the mirror.
	hostsDir := t.TempDir()
	hr := runCtrSeed(t, harness.Cmd{Argv: []string{ctrSeed, "hosts", "--mirror", reg.Host + "/site", "--plain-http", "-o", hostsDir, ociSeed, dockerSeed}})
	if hr.code != 0 {
		t.Fatalf("hosts: exit %d: %s", hr.code, hr.stderr)
	}
	if _, err := os.Stat(filepath.Join(hostsDir, "registry.local", "hosts.toml")); err != nil {
		t.Fatal(err)
	}
	if again := runCtrSeed(t, harness.Cmd{Argv: []string{ctrSeed, "hosts", "--mirror", reg.Host + "/site", "-o", hostsDir, "--registry", "registry.local"}}); again.code == 0 {
		t.Errorf("hosts overwrote an existing hosts.toml without --force")
	}
	for i := 0; i < 2; i++ {
		node := harness.StartDaemon(t, harness.DaemonOptions{DisableCRI: true})
		for ref, want := range map[string]digest.Digest{"registry.local/push/multi:1": idx.Digest} {
			if out, err := node.Ctr(t, "-n", "default", "images", "pull", "--hosts-dir", hostsDir, ref); err != nil {
				t.Fatalf("node %d: ctr images pull: %v\n%s", i, err, out)
			}
			out, _ := node.Ctr(t, "-n", "default", "images", "ls")
			if !strings.Contains(out, want.String()) {
				t.Errorf("node %d: %s not pulled as %s:\n%s", i, ref, want, out)
			}
			if snaps, _ := node.Ctr(t, "-n", "default", "snapshots", "ls"); !strings.Contains(snaps, "Committed") {
				t.Errorf("node %d: nothing unpacked", i)
			}
		}
	}
}

// A corrupt seed pushes no manifest under its image's name, and says so
// in one line.
func TestPushCorruptSeed(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	b := uniqueImage(t, "registry.local/push/corrupt:1", impHostPlatform(), false, testseed.Gzip)
	s := impOciSeedOf(t, b)
	bad := impCorrupt(t, b, s.Blobs)
	r := pushRun(t, "--to", reg.Host, "--plain-http", writeOCI(t, s, testseed.Uncompressed))
	el := impErrorLines(t, r.stderr, "")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], bad.String()) {
		t.Errorf("exit %d, stderr %q; want one line naming %s", r.code, r.stderr, bad)
	}
	if _, err := skopeoDigest(t, reg.Host+"/registry.local/push/corrupt:1"); err == nil {
		t.Errorf("a manifest was pushed for the corrupt image")
	}
}

// A delta seed pushes where the registry holds what it left out; where it
// does not, one line names the left-out blob.
func TestPushDeltaSeed(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	v1, v2 := testutil.DeltaImages(t, "registry.local/push/delta:1", "registry.local/push/delta:2", impHostPlatform())
	node := namespace(t)
	mustImport(t, node, writeOCI(t, impOciSeedOf(t, v1), testseed.Uncompressed))
	inv := filepath.Join(t.TempDir(), "node.json")
	if r := ctrSeedRun(t, node, "inventory", "-o", inv); r.code != 0 {
		t.Fatal(r.stderr)
	}
	delta := filepath.Join(t.TempDir(), "delta.tar")
	mustSave(t, node, "--offline", "--seed", writeOCI(t, impOciSeedOf(t, v2), testseed.Uncompressed), "--have", inv, "-o", delta, v2.Name)
	// The registry lacks v1's layers: refused, naming one.
	r := pushRun(t, "--to", reg.Host, "--plain-http", delta)
	if r.code != 1 || !strings.Contains(r.stderr, "left out of this delta seed, made for inventory") || !strings.Contains(r.stderr, "not in the registry either (push the base first)") {
		t.Errorf("delta into an empty registry: exit %d, %q", r.code, r.stderr)
	}
	// With v1 pushed first, into the same repository: the delta goes.
	if r := pushRun(t, "--to", reg.Host, "--plain-http", writeOCI(t, impOciSeedOf(t, v1), testseed.Uncompressed)); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := pushRun(t, "--to", reg.Host, "--plain-http", delta); r.code != 0 {
		t.Errorf("delta where the registry holds the rest: exit %d, %q", r.code, r.stderr)
	}
	if got, err := skopeoDigest(t, reg.Host+"/registry.local/push/delta:2"); err != nil || got != v2.Manifest.Digest {
		t.Errorf("skopeo: %v %s; want %s", err, got, v2.Manifest.Digest)
	}
}

// A seed holding one platform of a multi-platform index (save's default)
// cannot be pushed keeping the index's digest into a registry that checks
// an index's manifests: one line says so and what to do; a registry host
// with a port is a path component of its own (registry_port).
func TestPushPartialIndex(t *testing.T) {
	idx, blobs, _, _ := pullIndex(t, "push-partial")
	reg := pullRegistry(t, testregistry.Options{}, "library/app", "1", idx, blobs)
	out := filepath.Join(t.TempDir(), "app.tar")
	mustSave(t, namespace(t), "--plain-http", "-o", out, reg.Host+"/library/app:1")
	site := testregistry.Start(t, testregistry.Options{})
	r := pushRun(t, "--to", site.Host, "--plain-http", out)
	el := impErrorLines(t, r.stderr, "")
	portPath := strings.ReplaceAll(reg.Host, ":", "_")
	if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "→ "+site.Host+"/"+portPath+"/library/app:1") ||
		!strings.Contains(el[0], "the seed holds 1 fewer platform manifests than its index names") || !strings.Contains(el[0], "--all-platforms") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	// Its platform manifest went by digest: nothing is left under the
	// index's tag.
	if got, err := skopeoDigest(t, site.Host+"/"+portPath+"/library/app:1"); err == nil {
		t.Errorf("after the failed push, the tag serves %s", got)
	}
	// The blobs it wrote before the index failed are counted.
	wrote := strings.Count(r.stdout, "\nwrote ")
	if strings.HasPrefix(r.stdout, "wrote ") {
		wrote++
	}
	if want := fmt.Sprintf("pushed 0 of 1 images to %s: %d blobs uploaded", site.Host, wrote); wrote == 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("stdout %q; want %d wrote lines and %q", r.stdout, wrote, want)
	}
	all := filepath.Join(t.TempDir(), "all.tar")
	mustSave(t, namespace(t), "--plain-http", "--all-platforms", "-o", all, reg.Host+"/library/app:1")
	if r := pushRun(t, "--to", site.Host, "--plain-http", all); r.code != 0 {
		t.Errorf("push of the whole index: exit %d, %q", r.code, r.stderr)
	}
	if got, err := skopeoDigest(t, site.Host+"/"+portPath+"/library/app:1"); err != nil || got != idx.Digest {
		t.Errorf("skopeo: %v %s; want %s", err, got, idx.Digest)
	}
}
