package fetcher

import (
	"context"
	"errors"
	"io"
)

// Unopened is a seed OpenAll did not open: it failed to (Err), or it was
// left alone on purpose (Skipped says why).
type Unopened struct {
	Path    string
	Err     error
	Skipped string
}

// WithStdin is what the path "-" reads, as a stream (OpenStream); without
// it, "-" is a file name like any other.
func WithStdin(r io.Reader) Opt { return func(c *openConfig) { c.stdin = r } }

// stdinName names the stdin seed in messages.
const stdinName = "<stdin>"

// OpenAll opens every seed paths name; a directory of seeds names each
// seed in it. Its one failure policy: a seed that does not open (missing,
// truncated, not an archive when named) is one Unopened with its error,
// and the others still open; a file in a directory of seeds that is no
// image archive at all (a README, a checksum list) is skipped. The caller
// closes the seeds.
func OpenAll(ctx context.Context, paths []string, opts ...Opt) (Seeds, []Unopened) {
	cfg := newOpenConfig(opts)
	var seeds Seeds
	var bad []Unopened
	for _, arg := range paths {
		if arg == "-" && cfg.stdin != nil {
			s, err := OpenStream(ctx, stdinName, cfg.stdin, opts...)
			if err != nil {
				bad = append(bad, Unopened{Path: stdinName, Err: err})
				continue
			}
			seeds = append(seeds, s)
			continue
		}
		ps, err := SeedsIn(arg)
		if err != nil {
			bad = append(bad, Unopened{Path: arg, Err: err})
			continue
		}
		for _, p := range ps {
			s, err := Open(ctx, p, opts...)
			switch {
			case err != nil && p != arg && errors.Is(err, ErrNotArchive):
				bad = append(bad, Unopened{Path: p, Skipped: "not an image archive"})
			case err != nil:
				bad = append(bad, Unopened{Path: p, Err: err})
			default:
				seeds = append(seeds, s)
			}
		}
	}
	return seeds, bad
}
