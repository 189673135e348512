package faults_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/procstat"
	"golang.org/x/sys/unix"

	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

// leaseOwnerLabel and the expiry label are what importer/lease.go and
// containerd put on the lease of an import.
const (
	leaseOwnerLabel  = "ctr-seed/owner"
	leaseExpireLabel = "containerd.io/gc.expire"
)

// ---- 1. SIGKILL midway ----

// TestKilledMidway: an import killed with SIGKILL while writing blobs
// leaves no image record; its lease (owner: the dead process, expiry 1 h)
// keeps the partial content. The next import of the seed succeeds, drops
// that lease, and leaves exactly what a clean import leaves.
//
// The lease's expiry (Options.LeaseExpiry) has no CLI flag, so the test
// only checks its value (about 1 h from the kill); that the next import
// cleans up without waiting for it is what is asserted.
func TestKilledMidway(t *testing.T) {
	ns := "kill"
	d, c, p, st, snaps := importMidway(t, ns)
	killedAt := time.Now()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := p.Wait(t, 10*time.Second)
	t.Logf("killed with %d of %d bytes of the big layer written", st.Offset, st.Total)
	if r.Signal != syscall.SIGKILL {
		t.Fatalf("ctr-seed was not killed by SIGKILL: %s", r)
	}
	if _, imported := parseStdout(t, r.Stdout); len(imported) != 0 {
		t.Errorf("an imported line from the killed import: %q", imported)
	}
	if imgs := harness.ImageTargets(t, c, ns); len(imgs) != 0 {
		t.Errorf("the killed import left image records: %v", imgs)
	}

	// Its lease is there, owned by the dead process.
	ls := harness.SeedLeases(t, c, ns)
	if len(ls) != 1 {
		t.Fatalf("after the kill: %d ctr-seed leases, want 1: %v", len(ls), ls)
	}
	stale := ls[0]
	host, _ := os.Hostname()
	owner := stale.Labels[leaseOwnerLabel]
	if parts := strings.Split(owner, ":"); len(parts) != 4 || parts[0] != host || parts[1] != procstat.PIDNamespace() || parts[2] != strconv.Itoa(p.Pid()) || parts[3] == "" {
		t.Errorf("lease %s: owner %q, want %s:%s:%d:<start time>", stale.ID, owner, host, procstat.PIDNamespace(), p.Pid())
	}
	if st := procstat.StartTime(p.Pid()); st != "" && strings.HasSuffix(owner, ":"+st) {
		t.Errorf("lease owner %q: a process with that pid and start time still runs", owner)
	}
	if exp, err := time.Parse(time.RFC3339, stale.Labels[leaseExpireLabel]); err != nil {
		t.Errorf("lease %s: expiry label %q: %v", stale.ID, stale.Labels[leaseExpireLabel], err)
	} else if left := exp.Sub(killedAt); left < 55*time.Minute || left > 61*time.Minute {
		t.Errorf("lease %s expires in %v, want about 1h (the default LeaseExpiry)", stale.ID, left)
	}
	// The lease holds what the import wrote: a partial ingest of the big
	// layer and snapshots of small ones.
	in := harness.Ingests(t, c, ns)
	committed, other := harness.Snapshots(t, c, ns)
	t.Logf("left by the killed import: ingests %v; blobs %v; snapshots %v %v", in, blobsPresent(t, c, ns), committed, other)
	if !slices.ContainsFunc(in, func(s string) bool { return strings.Contains(s, seed.Big.Digest.Encoded()) }) {
		t.Errorf("no partial ingest of the big layer after the kill: %v", in)
	}
	if snaps > 0 && len(committed)+len(other) == 0 {
		t.Errorf("no snapshot after the kill: there were %d just before", snaps)
	}

	// The next import succeeds and drops the dead owner's lease.
	r2 := mustImport(t, d, ns)
	if _, imported := parseStdout(t, r2.Stdout); len(imported) != 1 {
		t.Errorf("next import: %d imported lines, want 1:\n%s", len(imported), r2.Stdout)
	}
	if r2.Stderr != "" {
		t.Errorf("next import: stderr %q", r2.Stderr)
	}
	for _, l := range harness.SeedLeases(t, c, ns) {
		if l.ID == stale.ID || l.Labels[leaseOwnerLabel] == owner {
			t.Errorf("the killed import's lease is still there: %+v", l)
		}
	}
	assertImported(t, c, ns)
	assertSameAsClean(t, d, c, ns)
}

// ---- 2. SIGINT and SIGTERM midway ----

// TestInterruptedMidway: SIGINT or SIGTERM while blobs are being written
// makes ctr-seed stop promptly, clean up (lease deleted with a synchronous
// GC: no snapshot, ingest or blob of the import is left) and exit 130 or
// 143.
func TestInterruptedMidway(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig], func(t *testing.T) {
			ns := "interrupt"
			_, c, p, st, snaps := importMidway(t, ns)
			sent := time.Now()
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := p.Thaw(); err != nil {
				t.Fatal(err)
			}
			r := p.Wait(t, 30*time.Second)
			took := time.Since(sent)
			t.Logf("%v with %d of %d bytes of the big layer written and %d snapshots made; exited %d after %v\nstderr: %s", sig, st.Offset, st.Total, snaps, r.Code, took.Round(time.Millisecond), r.Stderr)
			if want := 128 + int(sig); r.Code != want {
				t.Errorf("exit %d, want %d: %s", r.Code, want, r)
			}
			if took > 10*time.Second {
				t.Errorf("took %v to exit after %v, want < 10s", took, sig)
			}
			el := assertFailedOutput(t, r, "whose write was interrupted")
			if len(el) != 1 || !strings.HasPrefix(el[0], imageLine()) {
				t.Errorf("stderr:\n%s\nwant one line starting %q", r.Stderr, imageLine())
			}
			if name := unix.SignalName(sig); !strings.HasSuffix(strings.TrimSpace(r.Stderr), "stopped by "+name) {
				t.Errorf("stderr does not end with why it stopped (%q):\n%s", "stopped by "+name, r.Stderr)
			}
			assertNothingLeft(t, c, ns)
		})
	}
}

// ---- 3. containerd restarted midway ----

// TestDaemonRestartedMidway: containerd goes away while ctr-seed writes
// blobs, either restarted at once ("restart") or stopped until ctr-seed
// has exited ("down"). ctr-seed exits 1 with one-line errors, the first
// naming the image; no image is recorded. When containerd is still down
// at the end, the lease cannot be deleted: that is one more line, and the
// lease is left to the next import, which must drop it. The next import
// succeeds and leaves what a clean import leaves.
func TestDaemonRestartedMidway(t *testing.T) {
	for _, down := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart", true: "down"}[down], func(t *testing.T) {
			ns := "restart"
			d, c, p, st, _ := importMidway(t, ns)
			t0 := time.Now()
			var r result
			thaw := func() {
				if err := p.Thaw(); err != nil {
					t.Fatal(err)
				}
			}
			if down {
				d.Stop(t)
				thaw()
				r = p.Wait(t, time.Minute)
				t.Logf("stopped containerd with %d of %d bytes of the big layer written; ctr-seed exited %v later", st.Offset, st.Total, time.Since(t0).Round(time.Millisecond))
				d.Restart(t)
			} else {
				d.Restart(t)
				thaw()
				t.Logf("restarted containerd in %v with %d of %d bytes of the big layer written", time.Since(t0).Round(time.Millisecond), st.Offset, st.Total)
				r = p.Wait(t, time.Minute)
			}
			t.Logf("ctr-seed: %s", r)
			if r.Code != 1 {
				t.Errorf("exit %d, want 1", r.Code)
			}
			el := assertFailedOutput(t, r, "whose write failed")
			if len(el) == 0 || !strings.HasPrefix(el[0], imageLine()) {
				t.Errorf("stderr:\n%s\nwant a first line starting %q", r.Stderr, imageLine())
			}
			left := harness.SeedLeases(t, c, ns)
			switch {
			case len(el) == 1 && len(left) == 0:
			case len(el) == 2 && len(left) == 1 && strings.HasPrefix(el[1], "ctr-seed: deleting lease "+left[0].ID+": "):
				t.Logf("the lease could not be deleted: %s", el[1])
			default:
				t.Errorf("stderr:\n%s\nleft leases %v: want one line and no lease, or a second line about the lease left", r.Stderr, left)
			}
			if down && len(left) != 1 {
				t.Errorf("containerd was down when ctr-seed exited, yet %d leases are left", len(left))
			}
			if imgs := harness.ImageTargets(t, c, ns); len(imgs) != 0 {
				t.Errorf("image records after the failed import: %v", imgs)
			}
			t.Logf("left: leases %v, ingests %v, blobs %v", left, harness.Ingests(t, c, ns), blobsPresent(t, c, ns))

			r2 := mustImport(t, d, ns)
			if r2.Stderr != "" {
				t.Errorf("next import: stderr %q", r2.Stderr)
			}
			assertImported(t, c, ns)
			assertSameAsClean(t, d, c, ns)
		})
	}
}

// ---- 4. two imports of one seed at once ----

// TestConcurrentImports: two ctr-seed processes import the same seed into
// the same namespace at once. Both succeed, and the namespace holds what
// one import leaves. containerd's per-ref ingest lock lets one of them
// write each blob; the other waits for it and finds it there.
func TestConcurrentImports(t *testing.T) {
	d := startDaemon(t, harness.DaemonOptions{})
	c := d.Client(t)
	ns := "concurrent"

	a := startCtrSeed(t, d, ns, "import", seed.Path)
	b := startCtrSeed(t, d, ns, "import", seed.Path)
	ra, rb := a.Wait(t, time.Minute), b.Wait(t, time.Minute)
	written := map[string][]string{}
	for i, r := range []result{ra, rb} {
		name := string(rune('A' + i))
		t.Logf("%s: %s", name, r)
		if r.Code != 0 || r.Stderr != "" {
			t.Errorf("import %s: exit %d, stderr %q", name, r.Code, r.Stderr)
		}
		wrote, imported := parseStdout(t, r.Stdout)
		if len(imported) != 1 || !strings.HasPrefix(imported[0], "imported "+seed.Name+" "+seed.Manifest.Digest.String()+": ") {
			t.Errorf("import %s: imported lines %q, want one for %s", name, imported, seed.Name)
		}
		for _, w := range wrote {
			written[w] = append(written[w], name)
		}
	}
	// Every blob is written, each by one process only.
	for _, desc := range seed.Blobs() {
		switch who := written[testutil.Short(desc.Digest)]; len(who) {
		case 0:
			t.Errorf("blob %s (%s): no wrote line from either import", desc.Digest, desc.MediaType)
		case 1:
		default:
			t.Errorf("blob %s (%s) written by both imports", desc.Digest, desc.MediaType)
		}
	}
	t.Logf("blobs written by: %v", written)
	assertImported(t, c, ns)
	assertSameAsClean(t, d, c, ns)
	if ls, err := c.LeasesService().List(nsCtx(ns)); err != nil || len(ls) != 0 {
		t.Errorf("leases left: %v (%v)", ls, err)
	}
}
