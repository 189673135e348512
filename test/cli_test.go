package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
)

// What a script can rely on: exit codes and one-line failures.
func TestCLIExitCodes(t *testing.T) {
	ns := namespace(t)
	t.Run("unknown-command", func(t *testing.T) {
		for _, cmd := range []string{"bogus", "imports"} {
			r := runCtrSeed(t, harness.Cmd{Argv: []string{ctrSeed, cmd}})
			if r.code != 2 || !strings.Contains(r.stderr, `unknown command "`+cmd+`"`) {
				t.Errorf("ctr-seed %s: exit %d, stderr %q; want 2 and the command named", cmd, r.code, r.stderr)
			}
		}
	})
	t.Run("missing-socket", func(t *testing.T) {
		b := uniqueImage(t, "registry.local/cli/socket:1", impHostPlatform(), false, testseed.Gzip)
		seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
		start := time.Now()
		r := runCtrSeed(t, harness.Cmd{Argv: []string{ctrSeed, "-a", "/run/ctr-seed-test-missing.sock", "import", seed}})
		if took := time.Since(start); r.code != 1 || took > 3*time.Second || !strings.Contains(r.stderr, "cannot access socket /run/ctr-seed-test-missing.sock") {
			t.Errorf("exit %d after %v, stderr %q; want 1 at once, saying it cannot access the socket", r.code, took, r.stderr)
		}
	})
	t.Run("text-file", func(t *testing.T) {
		for _, body := range []string{"sha256sum a.tar\n", strings.Repeat("a README, longer than one tar block\n", 40)} {
			p := impWriteBytes(t, "README.txt", []byte(body))
			r := ctrSeedRun(t, ns, "import", p)
			if el := impErrorLines(t, r.stderr, ""); r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "not an image archive (no index.json, manifest.json or oci-layout)") || strings.Contains(el[0], "invalid argument") {
				t.Errorf("a text file of %d bytes: exit %d, stderr %q", len(body), r.code, r.stderr)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		r := ctrSeedRun(t, ns, "version")
		if r.code != 0 || !strings.Contains(r.stdout, "Client:") || !regexp.MustCompile(`Server:\n  Version:  v?2\.`).MatchString(r.stdout) {
			t.Errorf("version: exit %d, stdout %q; want client and server versions", r.code, r.stdout)
		}
	})
	t.Run("bad-seed-among-good-ones", func(t *testing.T) {
		a := uniqueImage(t, "registry.local/cli/a:1", impHostPlatform(), false, testseed.Gzip)
		b := uniqueImage(t, "registry.local/cli/b:1", impHostPlatform(), false, testseed.Gzip)
		sa := writeOCI(t, impOciSeedOf(t, a), testseed.Uncompressed)
		sb := writeOCI(t, impOciSeedOf(t, b), testseed.Gzip)
		missing := t.TempDir() + "/missing.tar"
		r := ctrSeedRun(t, ns, "import", sa, missing, sb)
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 || !strings.HasPrefix(el[0], "ctr-seed: seed "+missing+": ") {
			t.Errorf("exit %d, stderr %q; want 1 and one line for the missing seed", r.code, r.stderr)
		}
		impAssertTargets(t, ns, map[string]digest.Digest{a.Name: a.Manifest.Digest, b.Name: b.Manifest.Digest})
	})
	t.Run("platform-the-seed-lacks", func(t *testing.T) {
		ns := namespace(t)
		b := uniqueImage(t, "registry.local/cli/linux-only:1", impHostPlatform(), false, testseed.Gzip)
		seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
		r := ctrSeedRun(t, ns, "import", "--platform", "windows/amd64", seed)
		el := impErrorLines(t, r.stderr, "")
		if r.code != 1 || len(el) != 1 || !strings.Contains(el[0], "nothing for windows/amd64") || !strings.Contains(el[0], "linux/") {
			t.Errorf("exit %d, stderr %q; want 1 and a line naming the platforms", r.code, r.stderr)
		}
		assertNothingLeft(t, ns)
	})
}

// The summary lines say what happened, in an operator's units: no
// registry part for an import, whole bytes under a KiB, and the blobs the
// store already had (not read from the seed, so not verified from it).
func TestCLISummaryLines(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "registry.local/cli/summary:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	r := mustImport(t, ns, seed)
	if strings.Contains(r.stdout, "from registry") || strings.Contains(r.stdout, ".0 B") {
		t.Errorf("stdout %q: want no registry part and no \"N.0 B\"", r.stdout)
	}
	r = mustImport(t, ns, seed)
	m := harness.SummaryRE.FindStringSubmatch(strings.TrimSpace(r.stdout))
	if want := strconv.Itoa(len(b.Blobs)); m == nil || m[4] != "0 B" || m[6] != want {
		t.Errorf("re-import: %q; want 0 B from seed and %s blobs already in the store", r.stdout, want)
	}
}

// The habits of ctr and nerdctl: a seed on stdin (`import -`), -i FILE,
// and a directory of seeds (k3s's agent/images) imports each seed in it,
// a README beside them skipped; a layout directory stays one seed.
func TestCLISeedSources(t *testing.T) {
	ns := namespace(t)
	a := uniqueImage(t, "registry.local/cli/stdin:1", impHostPlatform(), false, testseed.Gzip)
	b := uniqueImage(t, "registry.local/cli/input:1", impHostPlatform(), false, testseed.Gzip)
	sa := writeOCI(t, impOciSeedOf(t, a), testseed.Gzip)
	sb := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	f, err := os.Open(sa)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := runCtrSeed(t, harness.Cmd{Argv: []string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "import", "-", "-i", sb}, Stdin: f})
	if r.code != 0 {
		t.Fatalf("import - -i: exit %d: %s", r.code, r.stderr)
	}
	impAssertTargets(t, ns, map[string]digest.Digest{a.Name: a.Manifest.Digest, b.Name: b.Manifest.Digest})

	ns = namespace(t) + "-dir"
	dir := t.TempDir()
	c := uniqueImage(t, "registry.local/cli/dir-c:1", impHostPlatform(), false, testseed.Gzip)
	d := uniqueImage(t, "registry.local/cli/dir-d:1", impHostPlatform(), false, testseed.Zstd)
	var sd testseed.Seed
	sd.Add(d.Name, d.Manifest, d.Blobs)
	if err := sd.WriteOCIDir(filepath.Join(dir, "d-layout")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, writeOCI(t, impOciSeedOf(t, c), testseed.Gzip), filepath.Join(dir, "c.tar.gz"))
	os.WriteFile(filepath.Join(dir, "README"), []byte("site 7 images\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".e.tar.partial"), []byte("half"), 0o644)
	r = ctrSeedRun(t, ns, "import", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "skipped "+filepath.Join(dir, "README")+": not an image archive") {
		t.Fatalf("import DIR: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	impAssertTargets(t, ns, map[string]digest.Digest{c.Name: c.Manifest.Digest, d.Name: d.Manifest.Digest})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --discard-unpacked-layers (CRI's discard_unpacked_layers): the image is
// unpacked, its layer blobs leave the content store, and a re-import reads
// nothing (the snapshots are there).
func TestCLIDiscardUnpackedLayers(t *testing.T) {
	ns := namespace(t)
	b := uniqueImage(t, "registry.local/cli/discard:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	mustImport(t, ns, "--discard-unpacked-layers", "--sync-fs", seed)
	impAssertUnpacked(t, ns, b.Name)
	cs := dclient(t).ContentStore()
	for _, l := range b.Layers {
		if _, err := cs.Info(nsCtx(ns), l.Digest); err == nil {
			t.Errorf("layer %s still in the content store", l.Digest)
		}
	}
	for _, d := range []digest.Digest{b.Manifest.Digest, b.Config.Digest} {
		if _, err := cs.Info(nsCtx(ns), d); err != nil {
			t.Errorf("blob %s: %v; the manifest and config stay", d, err)
		}
	}
	r := mustImport(t, ns, "--discard-unpacked-layers", seed)
	if wrote, _ := impParseStdout(t, r.stdout); len(wrote) != 0 {
		t.Errorf("re-import wrote %v", wrote)
	}
	if r := ctrSeedRun(t, ns, "import", "--discard-unpacked-layers", "--no-unpack", seed); r.code != 2 {
		t.Errorf("with --no-unpack: exit %d, want 2", r.code)
	}
}
