package harness

import (
	"context"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// DebugLogs is ctx with a debug-level logger (log.G) writing into the
// returned buffer: for a test that asserts what code in process logged.
func DebugLogs(ctx context.Context) (context.Context, *SyncBuffer) {
	b := &SyncBuffer{}
	l := logrus.New()
	l.SetOutput(b)
	l.SetLevel(logrus.DebugLevel)
	return log.WithLogger(ctx, logrus.NewEntry(l)), b
}
