package test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A layer only the registry holds that is a decompression bomb is refused
// on pull, whichever applies the layers: ctr-seed itself (the cap is
// checked as it decompresses) or the daemon's diff service
// (--daemon-apply: ctr-seed holds the layer to the cap as it streams into
// the store). The one cap (importer.Options.Limits) covers every layer,
// so --max-layer-bytes 16 MiB, with a seed holding everything but the
// bomb, caps a 64 MiB zero layer (~64 KB of gzip) that the defaults
// (200:1 above 1 GiB) would let through: cheap to build and to refuse.
func TestPullRegistryBomb(t *testing.T) {
	const (
		zeros    = 64 << 20 // the bomb's uncompressed file
		maxBytes = 16 << 20 // --max-layer-bytes of the seed
	)
	for _, tc := range []struct {
		name      string
		flags     []string
		inProcess bool // the layers are applied by ctr-seed, not the daemon
	}{
		{"in-process", nil, true},
		{"daemon-apply", []string{"--daemon-apply"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			ns := namespace(t)

			// A lower layer unique to this run (from the seed) and the
			// bomb on top (from the registry only).
			base := pullFresh(t, "bomb-base", impHostPlatform(), testseed.Gzip)
			lower, lowerDiff := base.Layers[0], base.DiffIDs[0]
			bomb, bombDiff, bp := relZeroLayer(t, "zeros-"+relUnique(t), zeros)
			bombBlob, err := os.ReadFile(bp)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bomb layer %s: %d bytes of gzip for %d bytes of zeros", bomb.Digest, bomb.Size, zeros)
			if fixed := max(int64(200)*bomb.Size, int64(1<<30)); fixed <= zeros {
				t.Fatalf("fixture: the default cap (%d) would refuse the bomb too", fixed)
			}
			diffIDs := []digest.Digest{lowerDiff, bombDiff}
			img := relImageOf(t, []ocispec.Descriptor{lower, bomb}, diffIDs, nil, nil)
			all := map[digest.Digest][]byte{lower.Digest: base.Blobs[lower.Digest], bomb.Digest: bombBlob}
			for d, p := range img.blobs {
				all[d] = p
			}
			blobs := []ocispec.Descriptor{img.manifest, img.config, lower, bomb}
			seeded := blobs[:3]

			reg := pullRegistry(t, testregistry.Options{}, "library/bomb", "1", img.manifest, all)
			ref := reg.Host + "/library/bomb:1"
			var s testseed.Seed
			held := map[digest.Digest][]byte{}
			for _, d := range seeded {
				held[d.Digest] = all[d.Digest]
			}
			s.Add(ref, img.manifest, held)
			seed := writeOCI(t, &s, testseed.Uncompressed)
			args := append([]string{"--plain-http", "--seed", seed, "--max-layer-bytes", strconv.Itoa(maxBytes)}, tc.flags...)
			args = append(args, ref)

			cause := regexp.MustCompile(regexp.QuoteMeta("layer "+bomb.Digest.String()+": decompression bomb: expands beyond "+strconv.Itoa(maxBytes)+" bytes (ratio ") +
				`[0-9]+:1 of ` + strconv.FormatInt(bomb.Size, 10) + ` compressed\)$`)
			prefix := "ctr-seed: pulling " + ref + ": "

			// The pull itself.
			r := pullRun(t, ns, args...)
			t.Logf("ctr-seed pull %s: exit %d; stderr: %s", strings.Join(args, " "), r.code, strings.TrimSpace(r.stderr))
			if r.code != 1 {
				t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			lines := impLines(r.stderr)
			if len(lines) != 1 {
				t.Errorf("stderr: %d lines, want one:\n%s", len(lines), r.stderr)
			}
			if len(lines) > 0 {
				rbCheckLine(t, lines[0], prefix, cause)
			}
			if strings.Contains(r.stdout, "imported") {
				t.Errorf("a summary for a failed pull:\n%s", r.stdout)
			}
			// The bomb came from the registry, and only it.
			pullBlobGets(t, reg, []ocispec.Descriptor{bomb}, seeded)
			rbNothingLeft(t, ns, ref, diffIDs, blobs)
			rbDaemonAnswers(t)

			// Again with --debug (in a namespace of its own), to see who
			// applied the layers: ctr-seed logs each layer it applies
			// itself; with --daemon-apply it must log none.
			nsDebug := ns + "-debug"
			r = rbRun(t, nsDebug, "--debug", args...)
			var errLines []string
			for _, l := range impLines(r.stderr) {
				if strings.HasPrefix(l, "ctr-seed: ") {
					errLines = append(errLines, l)
				}
			}
			if r.code != 1 || len(errLines) != 1 {
				t.Errorf("--debug: exit %d, error lines %q; want exit 1 and one error line\nstderr: %s", r.code, errLines, r.stderr)
			} else {
				rbCheckLine(t, errLines[0], prefix, cause)
			}
			applied := strings.Count(r.stderr, inProcessMsg)
			switch {
			case tc.inProcess && !rbLogged(r.stderr, inProcessMsg, bomb.Digest.String()):
				t.Errorf("--debug: the bomb was not applied in process (%d layers were); stderr:\n%s", applied, r.stderr)
			case !tc.inProcess && applied != 0:
				t.Errorf("--daemon-apply --debug: %d layers applied in process; stderr:\n%s", applied, r.stderr)
			}
			t.Logf("--debug: %d layers applied in process", applied)
			rbNothingLeft(t, nsDebug, ref, diffIDs, blobs)

			// Control: without the tight cap the same image pulls (the
			// defaults allow 1 GiB), so the cap, and nothing else, refused
			// it. Last, since afterwards the daemon holds the blobs.
			nsOK := ns + "-control"
			ok := append([]string{"--plain-http", "--seed", seed}, tc.flags...)
			mustPull(t, nsOK, append(ok, ref)...)
			if _, found := imageMap(t, nsOK)[ref]; !found {
				t.Errorf("control pull: no image %s", ref)
			}
			if err := dclient(t).ImageService().Delete(nsCtx(nsOK), ref, images.SynchronousDelete()); err != nil {
				t.Errorf("deleting the control image: %v", err)
			}
			rbDaemonAnswers(t)
			t.Logf("%s: %v", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// rbCheckLine checks a pull's error line: the ref, then the cause, once.
func rbCheckLine(t *testing.T, line, prefix string, cause *regexp.Regexp) {
	t.Helper()
	if !strings.HasPrefix(line, prefix) {
		t.Errorf("stderr line %q does not start with %q", line, prefix)
	}
	m := cause.FindAllStringIndex(line, -1)
	switch {
	case len(m) == 0:
		t.Errorf("stderr line %q does not match %s", line, cause)
	case len(m) > 1:
		relKnownBug(t, repeatBug, "the cause appears %d times in %q", len(m), line)
	}
	if len(m) > 0 && m[len(m)-1][1] != len(line) {
		t.Errorf("stderr line %q goes on after the cause", line)
	}
	if !strings.Contains(line, "decompression bomb") {
		t.Errorf("stderr line %q does not say decompression bomb", line)
	}
}

// rbLogged reports whether one line of logs holds every string of want.
func rbLogged(logs string, want ...string) bool {
	for _, l := range impLines(logs) {
		all := true
		for _, w := range want {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// rbNothingLeft checks what a failed pull must leave in ns: no image
// record, no ctr-seed lease, no snapshot (of the image's chain or any
// other), no blob of the image.
func rbNothingLeft(t *testing.T, ns, ref string, diffIDs []digest.Digest, blobs []ocispec.Descriptor) {
	t.Helper()
	if _, err := dclient(t).ImageService().Get(nsCtx(ns), ref); !errdefs.IsNotFound(err) {
		t.Errorf("%s: image record %s: err %v, want not found", ns, ref, err)
	}
	if ls := impSeedLeases(t, ns); len(ls) != 0 {
		t.Errorf("%s: ctr-seed leases left: %v", ns, ls)
	}
	sn := dclient(t).SnapshotService("overlayfs")
	for _, c := range identity.ChainIDs(diffIDs) {
		if _, err := sn.Stat(nsCtx(ns), c.String()); !errdefs.IsNotFound(err) {
			t.Errorf("%s: snapshot %s of the image's chain: err %v, want not found", ns, c, err)
		}
	}
	assertNothingLeft(t, ns)
	pullNoContent(t, ns, blobs...)
}

// rbDaemonAnswers checks that containerd still serves requests.
func rbDaemonAnswers(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := dclient(t).Version(ctx); err != nil {
		t.Errorf("containerd does not answer: %v", err)
	} else if _, err := dclient(t).NamespaceService().List(ctx); err != nil {
		t.Errorf("containerd %s does not list namespaces: %v", v.Version, err)
	}
}

// rbRun runs `ctr-seed global... pull args...` as pullRun does (no
// developer credentials, a timeout).
func rbRun(t *testing.T, ns string, global string, args ...string) result {
	t.Helper()
	return runCtrSeed(t, harness.Cmd{
		Argv:    append([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns, global, "pull"}, args...),
		Env:     []string{"DOCKER_CONFIG=" + t.TempDir()},
		Timeout: 3 * time.Minute,
	})
}

// TestPullRegistryBombNoSeed: with no seed at all, --max-layer-bytes still
// caps the registry's layers (it once reached only seeds' layers, leaving
// a plain pull to the defaults).
func TestPullRegistryBombNoSeed(t *testing.T) {
	const zeros, maxBytes = 64 << 20, 16 << 20
	ns := namespace(t)
	bomb, bombDiff, bp := relZeroLayer(t, "zeros-"+relUnique(t), zeros)
	bombBlob, err := os.ReadFile(bp)
	if err != nil {
		t.Fatal(err)
	}
	diffIDs := []digest.Digest{bombDiff}
	img := relImageOf(t, []ocispec.Descriptor{bomb}, diffIDs, nil, nil)
	all := map[digest.Digest][]byte{bomb.Digest: bombBlob}
	for d, p := range img.blobs {
		all[d] = p
	}
	reg := pullRegistry(t, testregistry.Options{}, "library/bomb-noseed", "1", img.manifest, all)
	ref := reg.Host + "/library/bomb-noseed:1"
	cause := regexp.MustCompile(regexp.QuoteMeta("layer "+bomb.Digest.String()+": decompression bomb: expands beyond "+strconv.Itoa(maxBytes)+" bytes (ratio ") +
		`[0-9]+:1 of ` + strconv.FormatInt(bomb.Size, 10) + ` compressed\)$`)
	for _, flags := range [][]string{nil, {"--daemon-apply"}} {
		args := append(append([]string{"--plain-http", "--max-layer-bytes", strconv.Itoa(maxBytes)}, flags...), ref)
		r := pullRun(t, ns, args...)
		lines := impLines(r.stderr)
		if r.code != 1 || len(lines) != 1 {
			t.Errorf("pull %v: exit %d, stderr %q; want exit 1 and one line", args, r.code, r.stderr)
			continue
		}
		rbCheckLine(t, lines[0], "ctr-seed: pulling "+ref+": ", cause)
		rbNothingLeft(t, ns, ref, diffIDs, []ocispec.Descriptor{img.manifest, img.config, bomb})
	}
}
