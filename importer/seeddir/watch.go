package seeddir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
// quiet for quietPeriod, kept its fingerprint, and nobody writes it.
type pending struct {
	due time.Time
	fp  fingerprint
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
	waiting := map[string]*pending{}
	wait := func(names []string) {
		for _, n := range names {
			if waiting[n] == nil {
				waiting[n] = &pending{due: time.Now().Add(quietPeriod)}
			}
		}
	}
	wait(busy)
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
			if !isCandidate(name) {
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// Removed or renamed away: forget it, so that adding it
				// back (even unchanged) imports it again.
				if err := s.state.forget(name); err != nil {
					log.G(ctx).WithError(err).Warn("saving seed state")
				}
			}
			if _, err := os.Lstat(ev.Name); errors.Is(err, fs.ErrNotExist) {
				delete(waiting, name)
				continue
			}
			p := waiting[name]
			if p == nil {
				p = &pending{}
				waiting[name] = p
			}
			// The fingerprint as of this event: if nothing changes in the
			// quiet period it is imported then, not one period later.
			p.fp, _ = fingerprintOf(ev.Name)
			p.due = time.Now().Add(quietPeriod)
		case <-tick.C:
			s.due(ctx, waiting)
			if _, err := os.Stat(s.cfg.SeedsDir); err != nil {
				return
			}
		case <-rescan.C:
			wait(s.ImportAll(ctx, false))
		}
	}
}

// due imports the waiting seeds that are complete.
func (s *Service) due(ctx context.Context, waiting map[string]*pending) {
	now := time.Now()
	for name, p := range waiting {
		if now.Before(p.due) {
			continue
		}
		path := filepath.Join(s.cfg.SeedsDir, name)
		fp, err := fingerprintOf(path)
		if err != nil {
			delete(waiting, name)
			continue
		}
		if fp != p.fp || beingWritten(path) {
			p.fp, p.due = fp, now.Add(quietPeriod)
			continue
		}
		delete(waiting, name)
		s.importIfNew(ctx, name, false)
	}
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
