package harness

import (
	"fmt"
	"regexp"

	"github.com/containerd/containerd/v2/pkg/progress"
)

// The lines ctr-seed import and pull print when not on a terminal, one
// definition for every test that reads them.

// SizeRE is a size as ctr-seed prints it: "506 B", "1.5 MiB".
const SizeRE = `[0-9]+(?:\.[0-9])? [KMGTPEZY]?i?B`

// WroteRE is a "wrote" line (import, pull, save): the short digest, the
// size, the source.
var WroteRE = regexp.MustCompile(`^wrote (sha256:[0-9a-f]{12}) \((` + SizeRE + `) from (seed|registry|containerd)\)$`)

// SummaryRE is an image's summary line: the verb (imported, pulled), the
// names, the digest, bytes from seeds, bytes from the registry (when one
// was used), blobs the store already had, and the seconds it took.
var SummaryRE = regexp.MustCompile(`^(imported|pulled) (\S+) (sha256:[0-9a-f]{64}): (` + SizeRE + `) from seed` +
	`(?:, (` + SizeRE + `) from registry)?(?:, ([0-9]+) blobs? already in the store \(not read from the seed\))?, ([0-9]+\.[0-9]+)s$`)

// SizeText is n as ctr-seed prints it (SizeRE).
func SizeText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return progress.Bytes(n).String()
}
