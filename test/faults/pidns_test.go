package faults_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/platforms"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// TestOtherPIDNamespaceKeepsLiveLease: an import running in one PID
// namespace while another ctr-seed runs in another (a pod with
// hostNetwork but not hostPID; here `unshare --pid`) on the same host.
// The second one's stale-lease sweep must not judge the first one's live
// lease dead by a pid it cannot see: the first import lands, in either
// direction.
func TestOtherPIDNamespaceKeepsLiveLease(t *testing.T) {
	small := smallSeed(t)
	for _, tc := range []struct {
		name           string
		bigIn, smallIn []string // argv prefixes: the host's namespace, or a new one
	}{
		{"sweep-from-a-new-namespace", nil, unsharePID},
		{"import-in-a-new-namespace", unsharePID, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, harness.DaemonOptions{})
			c := d.Client(t)
			const ns = "pidns"
			big := harness.Start(t, harness.Cmd{Argv: append(append([]string(nil), tc.bigIn...),
				ctrSeed, "--address", d.Address, "--namespace", ns, "import", seed.Path)})
			waitMidway(t, c, ns, big)
			// Frozen, so that it is still midway (its lease held) while
			// the other import sweeps.
			if err := big.Freeze(); err != nil {
				t.Fatal(err)
			}
			r := harness.Start(t, harness.Cmd{Argv: append(append([]string(nil), tc.smallIn...),
				ctrSeed, "--address", d.Address, "--namespace", "pidns-other", "import", small)}).Wait(t, time.Minute)
			if err := big.Thaw(); err != nil {
				t.Fatal(err)
			}
			if r.Code != 0 {
				t.Fatalf("the other import: %s", r)
			}
			if rb := big.Wait(t, 2*time.Minute); rb.Code != 0 {
				t.Fatalf("the import whose lease the other one saw failed: %s", rb)
			}
			assertImported(t, c, ns)
			harness.AssertNoSeedLeases(t, c, ns)
		})
	}
}

// unsharePID runs a command as pid 1 of a new PID namespace, with its own
// /proc: the pids of the host's namespace are not there.
var unsharePID = []string{"unshare", "--pid", "--fork", "--mount-proc"}

// smallSeed is testseed's standard image as an OCI tar.
func smallSeed(t *testing.T) string {
	t.Helper()
	b := testutil.Build(t, testseed.Standard("registry.local/faults/pidns-small:1", platforms.DefaultSpec(), false, testseed.Gzip))
	var s testseed.Seed
	s.Add(b.Name, b.Manifest, b.Blobs)
	p := filepath.Join(t.TempDir(), "small.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.WriteOCITar(f); err != nil {
		t.Fatal(err)
	}
	return p
}
