package seeddir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/log"
	"github.com/fsnotify/fsnotify"
)

const (
	tickEvery   = 200 * time.Millisecond
	rescanEvery = 30 * time.Second // safety net for missed events
	dirPoll     = 2 * time.Second  // while the seeds dir does not exist
)

// pending is a seed seen changing; it is imported once it has been
// quiet for its quiet period (quietFor), kept its fingerprint, and nobody
// writes it.
type pending struct {
	since time.Time // its last change seen
	fp    fingerprint
}

// watch imports seeds dropped into the directory until ctx ends. If the
// directory disappears it waits for it to come back.
func (s *Service) watch(ctx context.Context, busy []string) error {
	for {
		if err := s.waitForDir(ctx); err != nil {
			return nil
		}
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return err
		}
		if err := w.Add(s.cfg.SeedsDir); err != nil {
			w.Close()
			log.G(ctx).WithError(err).Warn("watching seeds dir")
			if !sleep(ctx, dirPoll) {
				return nil
			}
			continue
		}
		// Seeds may have arrived while nobody watched.
		busy = append(busy, s.ImportAll(ctx, false)...)
		s.loop(ctx, w, busy)
		busy = nil
		w.Close()
		if ctx.Err() != nil {
			return nil
		}
		log.G(ctx).Warn("seeds dir went away; waiting for it to come back")
	}
}

func (s *Service) waitForDir(ctx context.Context) error {
	for {
		if fi, err := os.Stat(s.cfg.SeedsDir); err == nil && fi.IsDir() {
			return nil
		}
		if !sleep(ctx, dirPoll) {
			return ctx.Err()
		}
	}
}

// loop handles events until ctx ends or the directory goes away.
func (s *Service) loop(ctx context.Context, w *fsnotify.Watcher, busy []string) {
	waiting := pendingSeeds{}
	waiting.wait(busy, time.Now())
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	rescan := time.NewTicker(rescanEvery)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.Errors:
			log.G(ctx).WithError(err).Warn("seeds dir watch")
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == filepath.Clean(s.cfg.SeedsDir) {
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					return
				}
				continue
			}
			name := filepath.Base(ev.Name)
			if first, ok := firstPartOf(s.cfg.SeedsDir, name); ok {
				// A later part of a split seed changes the seed its
				// first part names.
				fp, _ := fingerprintOf(filepath.Join(s.cfg.SeedsDir, first))
				s.seen(ctx, waiting, first)
				waiting.changed(first, fp, time.Now())
				continue
			}
			if !isCandidate(name) {
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// Removed or renamed away: forget it, so that adding it
				// back (even unchanged) imports it again.
				if isImageList(name) {
					s.stopList(name) // a new version is pulled from its start
				}
				if err := s.state.forget(name); err != nil {
					log.G(ctx).WithError(err).Warn("saving seed state")
				}
			}
			if _, err := os.Lstat(ev.Name); errors.Is(err, fs.ErrNotExist) {
				delete(waiting, name)
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					s.seedGone(ctx, name)
				}
				continue
			}
			// The fingerprint as of this event: if nothing changes in the
			// quiet period it is imported then, not one period later.
			fp, _ := fingerprintOf(ev.Name)
			s.seen(ctx, waiting, name)
			waiting.changed(name, fp, time.Now())
			// A seed renamed into place may be ready now: no tick's wait.
			for _, name := range waiting.ready(s.cfg.SeedsDir, time.Now()) {
				s.importIfNew(ctx, name, false)
			}
		case <-tick.C:
			for _, name := range waiting.ready(s.cfg.SeedsDir, time.Now()) {
				s.importIfNew(ctx, name, false)
			}
			if _, err := os.Stat(s.cfg.SeedsDir); err != nil {
				return
			}
		case <-rescan.C:
			waiting.wait(s.ImportAll(ctx, false), time.Now())
		}
	}
}

// seen tells the observer of a seed the watch saw change, unless it is
// pending already (a seed being copied changes many times).
func (s *Service) seen(ctx context.Context, waiting pendingSeeds, name string) {
	if waiting[name] == nil {
		s.observe(ctx, seedEvent(ctx, Seen, name))
	}
}

// pendingSeeds are the seeds of a directory seen changing, by name: each
// is ready once it has been quiet for its quiet period, kept its
// fingerprint over that period, and nobody has it open for writing.
type pendingSeeds map[string]*pending

// wait adds names (seeds still being written) not pending yet.
func (ps pendingSeeds) wait(names []string, now time.Time) {
	for _, n := range names {
		if ps[n] == nil {
			ps[n] = &pending{since: now}
		}
	}
}

// changed notes that name was seen with fp at now: its quiet period
// starts again.
func (ps pendingSeeds) changed(name string, fp fingerprint, now time.Time) {
	p := ps[name]
	if p == nil {
		p = &pending{}
		ps[name] = p
	}
	p.fp, p.since = fp, now
}

// ready removes and returns, sorted, the seeds of dir that are complete
// at now; seeds gone meanwhile are dropped, changed ones wait again. The
// quiet period is the seed's as it is now (a file, a layout directory, a
// split seed that may have parts to come).
func (ps pendingSeeds) ready(dir string, now time.Time) []string {
	var out []string
	for name, p := range ps {
		path := filepath.Join(dir, name)
		fp, err := fingerprintOf(path)
		if err != nil {
			delete(ps, name)
			continue
		}
		quiet, since := quietFor(path), p.since
		if quiet == quietPeriod && fp == p.fp && fp.MTime.Before(since.Add(-quiet)) {
			// A seed file unchanged since its event, which had not been
			// written for a quiet period already then: renamed or moved
			// into place (cp -p, rsync keep the mtime). It is ready now,
			// not a period after the rename. (Not for directories and
			// split sets that may grow: their copies keep old mtimes while
			// parts are still to come.)
			since = fp.MTime
		}
		if now.Before(since.Add(quiet)) {
			continue
		}
		if fp != p.fp || beingWritten(path) {
			p.fp, p.since = fp, now
			continue
		}
		delete(ps, name)
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
