package plugin_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/test/harness"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// trickleRegistry is a hostile registry on loopback: it answers /v2/ and
// a manifest's HEAD at once, and a manifest's GET a byte every 200 ms,
// for as long as the client stays.
type trickleRegistry struct {
	host    string
	started chan struct{} // closed at the first manifest GET
	once    sync.Once
	active  atomic.Int32 // manifest GETs being trickled
}

func startTrickleRegistry(t *testing.T) *trickleRegistry {
	t.Helper()
	r := &trickleRegistry{started: make(chan struct{})}
	body := []byte(strings.Repeat(" ", 4096) + "{}")
	dgst := digest.FromBytes(body)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.host = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.Contains(req.URL.Path, "/manifests/") {
			w.WriteHeader(http.StatusOK) // /v2/: no auth
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Docker-Content-Digest", dgst.String())
		w.WriteHeader(http.StatusOK)
		if req.Method != http.MethodGet {
			return
		}
		r.active.Add(1)
		defer r.active.Add(-1)
		r.once.Do(func() { close(r.started) })
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for _, b := range body {
			select {
			case <-req.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := w.Write([]byte{b}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// TestPluginListStalledRegistry: an image list whose registry trickles its
// manifest a byte at a time holds neither the seeds directory nor itself
// forever: a seed dropped in meanwhile is imported while the list is
// stuck; the log names the slow reference while it is slow, and its pull
// ends at pull_timeout, in one error line naming it.
func TestPluginListStalledRegistry(t *testing.T) {
	t.Parallel()
	const timeout = 12 * time.Second
	reg := startTrickleRegistry(t)
	ref := reg.host + "/library/slow:1"
	seeds := newSeedsDir(t)
	os.WriteFile(filepath.Join(seeds, "slow.txt"), []byte(ref+"\n"), 0o644)
	pd := startPluginWith(t, seeds, harness.DaemonOptions{DisableCRI: true},
		map[string]any{"plain_http": []string{reg.host}, "pull_timeout": timeout.String()})
	select {
	case <-reg.started:
	case <-time.After(importWait):
		t.Fatalf("the list's pull never reached the registry:\n%s", tail(pd.d.Log(), 30))
	}

	img := uniqueImage(t, "docker.io/ctrseed-test/list-stalled:1", false, testseed.Gzip)
	dropIn(t, pd.seeds, "app.tar", ociSeed(t, img, testseed.Uncompressed))
	waitFor(t, importWait, "the seed dropped in imported", func() error {
		if imported(pd.d.Log(), "app.tar") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if reg.active.Load() == 0 || len(errorLines(pd.d.Log(), "slow.txt")) != 0 {
		t.Errorf("the list was no longer stuck when the seed landed: the seed waited for it")
	}
	if err := checkImage(pd.c, pd.ns, img.Name, pd.labels); err != nil {
		t.Error(err)
	}

	waitFor(t, timeout+importWait, "the slow pull ended by pull_timeout", func() error {
		if len(errorLines(pd.d.Log(), "slow.txt")) == 0 {
			return fmt.Errorf("no error line yet")
		}
		return nil
	})
	log := pd.d.Log()
	slow := seedLines(log, "warning", "image list: pull slow", "slow.txt")
	if len(slow) == 0 || !strings.Contains(slow[0], ref) {
		t.Errorf("slow-pull warnings %q; want one naming %s", slow, ref)
	}
	el := errorLines(log, "slow.txt")
	if len(el) != 1 || !strings.Contains(el[0], ref) || !strings.Contains(el[0], "pull_timeout") {
		t.Errorf("error lines %q; want one naming %s and pull_timeout", el, ref)
	}
	t.Logf("slow: %q\nerror: %q", slow, el)
	waitFor(t, importWait, "the trickled GET given up", func() error {
		if n := reg.active.Load(); n != 0 {
			return fmt.Errorf("%d GETs still trickling", n)
		}
		return nil
	})
	pd.assertServing(t)
}
