package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ctr-seed/ctr-seed/internal/procstat"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

const (
	// LeaseLabel marks the leases ctr-seed creates, so they can be found.
	LeaseLabel = "ctr-seed/import"
	// leaseOwner says which process holds a lease ("host:pid:start"), so a
	// later import can drop the lease of one that was killed.
	leaseOwner = "ctr-seed/owner"

	// stoppedGCWait bounds the wait for the garbage collection after a
	// stopped import's lease is deleted.
	stoppedGCWait = 3 * time.Second
)

// ErrLeaseLost is matched (errors.Is) when an import's lease was deleted
// by someone else while it ran: a fault of the node, not of the seed, so
// the plugin tries the seed again.
var ErrLeaseLost = errors.New("import lease lost")

// runLease holds everything a run writes until the records exist. It is
// made when the run's first write is about to happen (use): a run that
// finds everything in place (see landOnce) writes nothing and makes none.
// end deletes it and waits for the garbage collector, so whatever no
// record references — a failed image's blobs and snapshots — is gone when
// it returns. A killed import's lease is deleted by the next import on
// the node, or expires after LeaseExpiry, whichever comes first.
type runLease struct {
	im    *Importer
	lease *leases.Lease // nil until used
}

// newRunLease starts a run: it drops the leases of killed imports first.
func (im *Importer) newRunLease(ctx context.Context) *runLease {
	im.dropStaleLeases(ctx, im.svc.Leases)
	return &runLease{im: im}
}

// use returns ctx under the run's lease, made at the first call.
func (l *runLease) use(ctx context.Context) (context.Context, error) {
	if l.lease == nil {
		made, err := l.im.svc.Leases.Create(ctx, leases.WithRandomID(), leases.WithExpiration(l.im.opts.LeaseExpiry),
			leases.WithLabel(LeaseLabel, time.Now().UTC().Format(time.RFC3339)),
			leases.WithLabel(leaseOwner, procstat.Owner()))
		if err != nil {
			return ctx, fmt.Errorf("creating lease: %w", err)
		}
		l.lease = &made
	}
	return leases.WithLease(ctx, l.lease.ID), nil
}

// end deletes the lease, if one was made, and waits for the collection.
func (l *runLease) end(ctx context.Context) error {
	if l.lease == nil {
		return nil
	}
	// The caller's context may be cancelled (SIGINT): clean up anyway.
	// When it was, wait for the collection only briefly: containerd
	// may be shutting down, with its GC scheduler already stopped.
	// The lease is deleted before the wait, so what it held goes at
	// the next collection either way.
	stopped := ctx.Err() != nil
	wait := time.Minute
	if stopped {
		wait = stoppedGCWait
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	// Stopped during the wait (containerd shutting down right after
	// an import): the same short wait, not the minute.
	defer context.AfterFunc(ctx, func() { time.AfterFunc(stoppedGCWait, cancel) })()
	id := l.lease.ID
	if err := l.im.svc.Leases.Delete(dctx, *l.lease, leases.SynchronousDelete); err != nil {
		if ctx.Err() != nil && dctx.Err() != nil {
			log.G(ctx).WithField("lease", id).Info("lease deleted; its content goes at the next garbage collection")
			return nil
		}
		if errdefs.IsNotFound(err) {
			// Someone else deleted it under the import: what it wrote
			// may be gone; the import is not to be trusted, the seed is.
			return fmt.Errorf("lease %s deleted by someone else during the import: %w", id, ErrLeaseLost)
		}
		return fmt.Errorf("deleting lease %s: %w", id, err)
	}
	return nil
}

// dropStaleLeases deletes ctr-seed leases whose process is gone (killed
// mid-import), in every namespace, so their partial content goes now
// rather than at expiry.
func (im *Importer) dropStaleLeases(ctx context.Context, ls leases.Manager) {
	var nss []string
	if im.svc.Namespaces != nil {
		var err error
		if nss, err = im.svc.Namespaces.List(ctx); err != nil {
			return
		}
	} else if ns, ok := namespaces.Namespace(ctx); ok {
		nss = []string{ns}
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		all, err := ls.List(nctx, fmt.Sprintf("labels.%q", LeaseLabel))
		if err != nil {
			continue
		}
		for _, l := range all {
			if owner, ok := l.Labels[leaseOwner]; ok && !procstat.OwnerAlive(owner) {
				log.G(ctx).WithField("lease", l.ID).WithField("namespace", ns).WithField("owner", owner).Info("dropping the lease of a killed import")
				if err := ls.Delete(nctx, l); err != nil {
					log.G(ctx).WithError(err).Warn("dropping stale lease")
				}
			}
		}
	}
}
