package seeddir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
)

// Service imports the seeds of one directory.
type Service struct {
	cfg      Config
	settings Settings
	client   *client.Client
	importer *importer.Importer
	// registry pulls what image lists name (nil: none could be made)
	registry remotes.Resolver
	state    *state
	// fopts open every seed: spool dir and cap, from the config.
	fopts []fetcher.Opt
	// failed counts the seeds that failed in this run.
	failed atomic.Int64
	// Image lists are pulled beside the seeds, one list at a time
	// (listTurn), so that a slow registry never holds a seed up: lists
	// has the cancel of each list queued or being pulled, listsDone
	// counts them.
	listMu    sync.Mutex
	lists     map[string]context.CancelFunc
	listTurn  chan struct{}
	listsDone sync.WaitGroup
	// observer is told what happens to each seed (nil: nobody).
	observer Observer
}

// New prepares the service with set, the config as Config.Settings
// checked it (key files read once, there); stateDir keeps what was
// imported (the plugin's root dir, or serve's --state-dir) and the spool.
func New(c *client.Client, set Settings, stateDir string, opts ...Option) (*Service, error) {
	cfg := set.Config
	spool := filepath.Join(stateDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, err
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	fopts := append(set.Fetcher, fetcher.WithSpoolDir(spool))
	reg, err := fetcher.NewRegistryResolver(context.Background(), fetcher.RegistryOptions{HostsDir: cfg.HostsDir, PlainHTTPHosts: cfg.PlainHTTP})
	if err != nil {
		// A broken docker config: seeds still import; lists say why not.
		log.L.WithError(err).Warn("no registry for image lists")
		reg = nil
	}
	im, err := importer.New(importer.FromClient(c), set.Importer)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, settings: set, client: c, importer: im, registry: reg, state: st, fopts: fopts,
		lists: map[string]context.CancelFunc{}, listTurn: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// SeedOptions are what the service opens every seed with (its spool dir
// and cap), for other imports on the same node to share (the plugin's
// --in-daemon service).
func (s *Service) SeedOptions() []fetcher.Opt { return slices.Clone(s.fopts) }

// ErrSeedsFailed is matched (errors.Is) by the error of a pass without
// watch (serve --once) in which some seeds failed; each was logged.
var ErrSeedsFailed = errors.New("seeds failed")

// Run imports every seed, then, if watching, each new or changed one until
// ctx ends. Bad seeds are logged and skipped. Without watch, Run returns
// once the directory is done, with ErrSeedsFailed if any seed failed (so
// an init container or ExecStartPre can act on it); watching, it fails
// only on ctx.
func (s *Service) Run(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, s.cfg.Namespace)
	ctx = log.WithLogger(ctx, log.G(ctx).WithField("seeds_dir", s.cfg.SeedsDir))
	if _, err := os.Stat(s.cfg.SeedsDir); err != nil {
		log.G(ctx).WithError(err).Warn("seeds dir not there (yet): nothing to import until it is")
	} else {
		log.G(ctx).WithField("namespace", s.cfg.Namespace).WithField("snapshotter", s.cfg.Snapshotter).Info("watching seeds dir")
	}
	// Lists being pulled stop with ctx; Run returns once they have.
	defer s.listsDone.Wait()
	busy := s.ImportAll(ctx, true)
	if !s.cfg.Watch {
		// Seeds still being written are waited for, then imported.
		for len(busy) > 0 && sleep(ctx, quietPeriod) {
			busy = s.importReady(ctx, busy)
		}
		s.listsDone.Wait()
		if n := s.failed.Load(); n > 0 {
			return fmt.Errorf("%d seed(s) of %s failed: %w", n, s.cfg.SeedsDir, ErrSeedsFailed)
		}
		return nil
	}
	return s.watch(ctx, busy)
}

// ImportAll imports every seed whose version was not imported yet. At boot
// (retryFailed) seeds that failed before are tried again. Seeds still being
// written are not read: their names are returned, to be tried later.
func (s *Service) ImportAll(ctx context.Context, retryFailed bool) (busy []string) {
	if retryFailed {
		ctx = withPass(ctx, PassBoot)
	} else {
		ctx = withPass(ctx, PassRescan)
	}
	entries, err := os.ReadDir(s.cfg.SeedsDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.G(ctx).WithError(err).Error("reading seeds dir")
		}
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if isCandidate(e.Name()) {
			names = append(names, e.Name())
		}
	}
	importOrder(names, func(n string) int64 {
		fi, err := os.Stat(filepath.Join(s.cfg.SeedsDir, n))
		if err != nil {
			return 0
		}
		return fi.Size()
	})
	// Seeds that left while nobody watched are forgotten, so that they are
	// imported again if they come back.
	gone, err := s.state.prune(names)
	if err != nil {
		log.G(ctx).WithError(err).Warn("saving seed state")
	}
	for _, n := range gone {
		s.seedGone(ctx, n)
	}
	// One seed at a time: each one's layers are applied in parallel
	// already. Two or three at once (measured, ten seeds of 2-20 MiB, two
	// cores) made the last image land no sooner (1.06 s either way) and
	// the first later (0.20-0.29 s against 0.13-0.15 s).
	for _, n := range names {
		if ctx.Err() != nil {
			return nil
		}
		if passOf(ctx) != PassRescan {
			// The rescan runs every 30 s: it says only what it does.
			s.observe(ctx, seedEvent(ctx, Seen, n))
		}
		if isBusy(filepath.Join(s.cfg.SeedsDir, n)) {
			busy = append(busy, n)
			s.skipped(ctx, n, "still being written or within its quiet period")
			continue
		}
		s.importIfNew(ctx, n, retryFailed)
	}
	return busy
}

// importOrder sorts names smallest first, so the first images are usable
// soonest, and image lists last: what the seeds bring is then in the
// store, and not pulled. Equal sizes go by name.
func importOrder(names []string, size func(string) int64) {
	sizes := make(map[string]int64, len(names))
	for _, n := range names {
		sizes[n] = size(n)
	}
	sort.SliceStable(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if la, lb := isImageList(a), isImageList(b); la != lb {
			return lb
		}
		if sizes[a] != sizes[b] {
			return sizes[a] < sizes[b]
		}
		return a < b
	})
}

// importReady imports those of names that are no longer being written and
// returns the rest.
func (s *Service) importReady(ctx context.Context, names []string) (busy []string) {
	for _, n := range names {
		if isBusy(filepath.Join(s.cfg.SeedsDir, n)) {
			busy = append(busy, n)
			continue
		}
		s.importIfNew(ctx, n, false)
	}
	return busy
}

// importIfNew imports the seed unless this version of it was imported
// and its images are all still there.
func (s *Service) importIfNew(ctx context.Context, name string, retryFailed bool) {
	path := filepath.Join(s.cfg.SeedsDir, name)
	fp, err := fingerprintOf(path)
	if err != nil {
		s.skipped(ctx, name, "gone")
		return // gone meanwhile
	}
	if r, ok := s.state.get(name); ok && r.Fingerprint == fp {
		if r.NotArchive {
			s.skipped(ctx, name, "not an image archive")
			return
		}
		if r.Error != "" && !retryFailed && !r.Retry {
			s.skipped(ctx, name, "failed before, unchanged since")
			return
		}
		if r.Error != "" && !retryFailed && time.Now().Before(r.RetryAt) {
			s.skipped(ctx, name, "image list backing off")
			return // an image list backing off
		}
		if r.Error == "" && s.imagesPresent(ctx, r.Images) {
			log.G(ctx).WithField("seed", name).Debug("seed unchanged since its import, skipped")
			s.skipped(ctx, name, "unchanged since its import")
			return
		}
		if r.Error != "" && !isImageList(name) {
			// A list's retry is said by its pull, once it runs.
			s.observe(ctx, seedEvent(ctx, Retried, name))
		}
	}
	if isImageList(name) {
		s.startList(ctx, name, path)
		return
	}
	s.importSeed(ctx, name, path, fp)
}

func (s *Service) imagesPresent(ctx context.Context, names []string) bool {
	is := s.client.ImageService()
	for _, n := range names {
		if _, err := is.Get(ctx, n); err != nil {
			return false
		}
	}
	return true
}

func (s *Service) importSeed(ctx context.Context, name, path string, fp fingerprint) {
	start := time.Now()
	lg := log.G(ctx).WithField("seed", name)
	rec := record{Fingerprint: fp, ImportedAt: start.UTC()}
	seed, err := fetcher.Open(ctx, path, s.fopts...)
	if errors.Is(err, fetcher.ErrNotArchive) {
		lg.WithError(err).Info("not an image archive, skipped")
		s.skipped(ctx, name, "not an image archive")
		rec.NotArchive = true
		if err := s.state.put(name, rec); err != nil {
			lg.WithError(err).Warn("saving seed state")
		}
		return
	}
	var results []importer.ImageResult
	if err == nil {
		rec.Version = seed.Index().Digest.String()
		results, err = s.importer.Import(ctx, fetcher.Seeds{seed})
		seed.Close()
	}
	var bytes int64
	inStore := 0
	var imageErrs []string // for the observer: what the log says, in one
	for _, r := range results {
		if r.Err != nil {
			lg.WithError(r.Err).Error("seed image failed")
			imageErrs = append(imageErrs, r.Err.Error())
			continue
		}
		if r.Warning != "" {
			lg.WithField("image", strings.Join(r.Names, ",")).WithField("why", r.Warning).Warn("seed image let in unverified")
		}
		if r.Skipped != "" {
			lg.WithField("image", r.Target).WithField("why", r.Skipped).Info("seed image skipped")
			continue
		}
		rec.Images = append(rec.Images, r.Names...)
		for _, n := range r.Names {
			if s.cfg.BaseName == "" && strings.HasPrefix(n, "import-") {
				lg.WithField("image", n).Warn("named by a tag alone, after today's date: set base_name in the config for a name a pod spec can use")
			}
		}
		bytes += r.FromSeed
		inStore += r.FromStore
	}
	if ctx.Err() != nil {
		// Stopped (containerd shutting down): not a verdict on the seed,
		// so nothing is recorded; the next start imports it again.
		lg.WithError(err).Info("seed import stopped")
		return
	}
	if err != nil {
		s.failed.Add(1)
		rec.Error, rec.Retry = err.Error(), errors.Is(err, importer.ErrLeaseLost)
		if !errors.Is(err, importer.ErrImagesFailed) {
			lg.WithError(err).Error("seed import failed")
		}
	}
	if err := s.state.put(name, rec); err != nil {
		lg.WithError(err).Warn("saving seed state")
	}
	// Told once the record is saved: whoever waits on the event finds it.
	if err != nil {
		e := seedEvent(ctx, Failed, name)
		e.Error = strings.Join(append([]string{err.Error()}, imageErrs...), ": ")
		s.observe(ctx, e)
	} else {
		// blobs_in_store: blobs the seed holds that the store had already,
		// so were not read from the seed (a corrupt copy there goes unseen;
		// ctr-seed verify reads them all).
		lg.WithField("images", strings.Join(rec.Images, ",")).WithField("bytes", progress.Bytes(bytes).String()).WithField("blobs_in_store", inStore).
			WithField("duration", time.Since(start).Round(time.Millisecond).String()).Info("seed imported")
		e := seedEvent(ctx, Imported, name)
		e.Images = rec.Images
		s.observe(ctx, e)
	}
}

// skipped tells the observer that seed was left alone, and why.
func (s *Service) skipped(ctx context.Context, seed, why string) {
	if passOf(ctx) == PassRescan {
		return // every 30 s for every seed left as it is: nothing to tell
	}
	e := seedEvent(ctx, Skipped, seed)
	e.Why = why
	s.observe(ctx, e)
}
