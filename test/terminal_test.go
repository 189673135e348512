package test

import (
	"strings"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testregistry"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// On a terminal (progress bars), every image's summary line is on the
// final screen, whole, for several seeds; a failed import's error line is
// printed whole after the bars, and stays; its blob is shown failed.
func TestTerminalOutput(t *testing.T) {
	ns := namespace(t)
	var seeds []string
	var imgs []*testseed.Built
	for _, n := range []string{"a", "b", "c"} {
		b := uniqueImage(t, "registry.local/terminal/"+n+":1", impHostPlatform(), false, testseed.Gzip)
		imgs = append(imgs, b)
		seeds = append(seeds, writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed))
	}
	argv := append([]string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "import"}, seeds...)
	screen, code := harness.Screen(t, argv, 100, 40, time.Minute)
	if code != 0 {
		t.Fatalf("exit %d; screen:\n%s", code, screen)
	}
	summaries := map[string]string{}
	for _, l := range strings.Split(screen, "\n") {
		if m := harness.SummaryRE.FindStringSubmatch(l); m != nil && m[1] == "imported" {
			summaries[m[2]] = m[3]
		}
	}
	for _, b := range imgs {
		if summaries[b.Name] != b.Manifest.Digest.String() {
			t.Errorf("no summary line for %s on the final screen:\n%s", b.Name, screen)
		}
	}

	bad := uniqueImage(t, "registry.local/terminal/bad:1", impHostPlatform(), false, testseed.Gzip)
	s := impOciSeedOf(t, bad)
	d := impCorrupt(t, bad, s.Blobs)
	seed := writeOCI(t, s, testseed.Uncompressed)
	screen, code = harness.Screen(t, []string{ctrSeed, "--address", daemon.Address, "--namespace", ns, "import", seed}, 80, 40, time.Minute)
	if code != 1 {
		t.Fatalf("corrupt seed: exit %d; screen:\n%s", code, screen)
	}
	line := "ctr-seed: seed " + seed + ": image " + bad.Name + " (" + bad.Manifest.Digest.String() + "): "
	found := false
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, line) && strings.Contains(l, "digest mismatch: expected "+d.String()) {
			found = true
		}
	}
	if !found {
		t.Errorf("the error line is not on the final screen whole:\n%s", screen)
	}
	if !strings.Contains(screen, "failed") {
		t.Errorf("the failed blob is not shown failed:\n%s", screen)
	}
	if strings.Contains(screen, "imported "+bad.Name) {
		t.Errorf("the bad image is reported imported:\n%s", screen)
	}
}

// save on a terminal: bars for the blobs (no "wrote" lines), and the
// summary line whole on the final screen once they stop.
func TestTerminalSave(t *testing.T) {
	b := uniqueImage(t, "registry.local/terminal/save:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	out := t.TempDir() + "/saved.tar"
	argv := []string{ctrSeed, "--address", daemon.Address, "--namespace", namespace(t), "save", "--offline", "--seed", seed, "-o", out, b.Name}
	screen, code := harness.Screen(t, argv, 100, 40, time.Minute)
	if code != 0 {
		t.Fatalf("exit %d; screen:\n%s", code, screen)
	}
	want := "saved " + out + ": 1 images, "
	found := false
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, want) {
			found = true
		}
		if harness.WroteRE.MatchString(l) {
			t.Errorf("a plain wrote line on a terminal: %q", l)
		}
	}
	if !found {
		t.Errorf("no %q line on the final screen:\n%s", want, screen)
	}
}

// push on a terminal: bars for the uploads, the per-image line and the
// summary whole on the final screen once they stop.
func TestTerminalPush(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	b := uniqueImage(t, "registry.local/terminal/push:1", impHostPlatform(), false, testseed.Gzip)
	seed := writeOCI(t, impOciSeedOf(t, b), testseed.Uncompressed)
	screen, code := harness.Screen(t, []string{ctrSeed, "push", "--plain-http", "--to", reg.Host, seed}, 160, 40, time.Minute)
	if code != 0 {
		t.Fatalf("exit %d; screen:\n%s", code, screen)
	}
	if !strings.Contains(screen, "pushed registry.local/terminal/push:1 → "+reg.Host+"/registry.local/terminal/push:1") ||
		!strings.Contains(screen, "pushed 1 of 1 images to "+reg.Host) {
		t.Errorf("lines missing on the final screen:\n%s", screen)
	}
	for _, l := range strings.Split(screen, "\n") {
		if harness.WroteRE.MatchString(l) {
			t.Errorf("a plain wrote line on a terminal: %q", l)
		}
	}
}
