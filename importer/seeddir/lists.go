package seeddir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/fetcher"
	"github.com/ctr-seed/ctr-seed/importer"
	digest "github.com/opencontainers/go-digest"
)

// An image list is a file of the seeds dir named *.txt, as in k3s's
// agent/images: one reference per line, blank lines and lines starting
// with # ignored. Each reference is pulled (what the directory's seeds
// brought is in the store by then, and not fetched again), pinned and
// labelled like an imported image. A reference that cannot be pulled is
// one error line, and the list is tried again, with backoff.

// maxListBytes caps what is read of a list: a list is kilobytes.
const maxListBytes = 1 << 20

func isImageList(name string) bool { return strings.HasSuffix(name, ".txt") }

// Backoff between tries of a list that failed: the first retry comes at
// the next rescan, each one after waits twice as long, up to the cap.
const (
	retryFirst = rescanEvery
	retryMax   = 10 * time.Minute
)

func retryAfter(attempts int) time.Duration {
	d := retryFirst
	for i := 1; i < attempts && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// readImageList reads the references of the list at path and its version
// (the digest of its bytes). A line that is no reference is an error of
// its own, naming the line; the others are still returned.
func readImageList(path string) (refs []string, version digest.Digest, bad []error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, "", nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, "", nil, fmt.Errorf("not a regular file (%s): %w", fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxListBytes+1))
	if err != nil {
		return nil, "", nil, err
	}
	if len(b) > maxListBytes {
		return nil, "", nil, fmt.Errorf("an image list of more than %d bytes: %w", maxListBytes, errdefs.ErrInvalidArgument)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxListBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		full, err := fetcher.NormalizeRef(line)
		if err != nil {
			bad = append(bad, fmt.Errorf("line %d: %q is no image reference: %w", n, line, err))
			continue
		}
		refs = append(refs, full)
	}
	return refs, digest.FromBytes(b), bad, sc.Err()
}

// startList pulls the list at path in the background, after the lists
// before it, unless it is queued or being pulled already: the seeds go on
// being imported meanwhile, however slow a registry is.
func (s *Service) startList(ctx context.Context, name, path string) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if _, queued := s.lists[name]; queued {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s.lists[name] = cancel
	s.listsDone.Add(1)
	go func() {
		defer s.listsDone.Done()
		defer func() {
			s.listMu.Lock()
			delete(s.lists, name)
			s.listMu.Unlock()
			cancel()
		}()
		select {
		case s.listTurn <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-s.listTurn }()
		// The list as it is now: it may have changed while queued.
		fp, err := fingerprintOf(path)
		if err != nil {
			return // gone meanwhile
		}
		s.pullList(ctx, name, path, fp)
	}()
}

// stopList stops the pull of a list that left the directory (nothing of
// it is recorded).
func (s *Service) stopList(name string) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if cancel, ok := s.lists[name]; ok {
		cancel()
	}
}

// slowFirst is when a pull still going is first named in a warning; each
// next one comes after twice the wait before (30 s, 1 m 30 s, 3 m 30 s...),
// none at or past the deadline.
const slowFirst = 30 * time.Second

// pullOne pulls ref within pull_timeout, naming it in a warning while it
// is slow; past the timeout it fails (context.DeadlineExceeded).
func (s *Service) pullOne(ctx context.Context, lg *log.Entry, im *importer.Importer, ref string) (importer.ImageResult, error) {
	timeout := s.settings.PullTimeout
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		start := time.Now()
		deadline, _ := pctx.Deadline()
		next := min(slowFirst, timeout/2)
		for at := start.Add(next); at.Before(deadline); at = at.Add(next) {
			if !sleep(pctx, time.Until(at)) {
				return // done, or at the deadline: the error line says it
			}
			select {
			case <-done:
				return
			default:
			}
			lg.WithField("image", ref).WithField("elapsed", time.Since(start).Round(time.Second).String()).
				WithField("pull_timeout", timeout.String()).Warn("image list: pull slow")
			next *= 2
		}
	}()
	res, err := im.Pull(pctx, fetcher.NewResolver(nil, s.registry), ref)
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("not pulled within pull_timeout (%s): %w", timeout, context.DeadlineExceeded)
	}
	return res, err
}

// pullList pulls the references of the list at path that the namespace
// lacks; the record says which failed, and when to try again.
func (s *Service) pullList(ctx context.Context, name, path string, fp fingerprint) {
	start := time.Now()
	lg := log.G(ctx).WithField("seed", name)
	rec := record{Fingerprint: fp, ImportedAt: start.UTC()}
	prev, _ := s.state.get(name)
	refs, version, bad, err := readImageList(path)
	if err == nil && len(refs) == 0 && len(bad) > 0 {
		// No line is a reference: a README, not a list. Said once.
		lg.WithField("why", bad[0].Error()).Info("no image references in it, skipped")
		rec.NotArchive = true
		if err := s.state.put(name, rec); err != nil {
			lg.WithError(err).Warn("saving seed state")
		}
		s.skipped(ctx, name, "no image references in it")
		return
	}
	// A bad line is said once per version of the list: trying again
	// cannot mend it.
	retry := prev.Fingerprint == fp && prev.Error != ""
	if retry {
		s.observe(ctx, seedEvent(ctx, Retried, name))
	}
	for _, e := range bad {
		if !retry {
			lg.WithError(e).Error("image list: line skipped")
		}
	}
	failures := 0
	if err != nil {
		lg.WithError(err).Error("image list unreadable")
		failures++
	}
	rec.Version = version.String()
	opts := s.settings.Importer
	opts.PullLabels = map[string]string{importer.LabelSeed: name, importer.LabelSeedVersion: version.String()}
	im, err := importer.New(importer.FromClient(s.client), opts)
	if err != nil {
		// The service's own options, accepted when it started: not met.
		lg.WithError(err).Error("image list: no importer")
		refs, failures = nil, failures+1
	}
	pulled := 0
	for _, ref := range refs {
		if ctx.Err() != nil {
			lg.Info("image list stopped")
			return
		}
		if s.imagesPresent(ctx, []string{ref}) {
			rec.Images = append(rec.Images, ref)
			continue // k3s pulls once too: a present image is not pulled again
		}
		if s.registry == nil {
			lg.WithField("image", ref).Error("image list: no registry to pull from")
			failures++
			continue
		}
		res, err := s.pullOne(ctx, lg, im, ref)
		if ctx.Err() != nil {
			lg.Info("image list stopped")
			return
		}
		if err != nil {
			lg.WithField("image", ref).WithError(err).Error("image list: pull failed")
			failures++
			continue
		}
		pulled++
		rec.Images = append(rec.Images, res.Names...)
	}
	if failures > 0 {
		s.failed.Add(1)
		rec.Error = fmt.Sprintf("%d of the list's references failed", failures)
		rec.Retry, rec.Attempts = true, 1
		if retry {
			rec.Attempts = prev.Attempts + 1
		}
		rec.RetryAt = start.Add(retryAfter(rec.Attempts)).UTC()
		lg.WithField("retry_at", rec.RetryAt.Format(time.RFC3339)).Info("image list: will try again")
	} else {
		lg.WithField("images", strings.Join(rec.Images, ",")).WithField("pulled", pulled).
			WithField("duration", time.Since(start).Round(time.Millisecond).String()).Info("image list pulled")
	}
	if err := s.state.put(name, rec); err != nil {
		lg.WithError(err).Warn("saving seed state")
	}
	if rec.Error != "" {
		e := seedEvent(ctx, Failed, name)
		e.Error = rec.Error
		s.observe(ctx, e)
	} else {
		e := seedEvent(ctx, Imported, name)
		e.Images = rec.Images
		s.observe(ctx, e)
	}
}
