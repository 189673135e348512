package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/ctr-seed/ctr-seed/importer"
	digest "github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v3"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// output renders an import: progress bars on a terminal, plain lines
// otherwise, nothing but errors with -q. Failures always go to stderr.
type output struct {
	out, errw io.Writer
	quiet     bool

	mu       sync.Mutex
	p        *mpb.Progress // nil unless on a terminal
	bars     map[digest.Digest]*mpb.Bar
	started  map[digest.Digest]string // digest → "size, source" for plain lines
	failures int
}

func newOutput(cmd *cli.Command) *output {
	o := &output{out: cmd.Root().Writer, errw: cmd.Root().ErrWriter, quiet: cmd.Bool("quiet"),
		bars: map[digest.Digest]*mpb.Bar{}, started: map[digest.Digest]string{}}
	if f, ok := o.out.(*os.File); ok && !o.quiet && term.IsTerminal(int(f.Fd())) {
		o.p = mpb.New(mpb.WithOutput(f), mpb.WithWidth(40))
	}
	return o
}

// short is d cut to 12 hex digits; any other string (never a panic on a
// malformed digest) is shown whole.
func short(d digest.Digest) string {
	alg, hex, ok := strings.Cut(string(d), ":")
	if !ok || len(hex) <= 12 {
		return string(d)
	}
	return alg + ":" + hex[:12]
}

func (o *output) BlobStarted(image string, d digest.Digest, size int64, src importer.Source) {
	if o.quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started[d] = fmt.Sprintf("%s from %s", progress.Bytes(size), src)
	if o.p != nil {
		o.bars[d] = o.p.AddBar(size,
			mpb.PrependDecorators(decor.Name(short(d)+" ", decor.WCSyncSpaceR), decor.Name(string(src)+" ")),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
			mpb.BarRemoveOnComplete())
	}
}

func (o *output) BlobProgress(d digest.Digest, n int64) {
	if o.p == nil {
		return
	}
	o.mu.Lock()
	b := o.bars[d]
	o.mu.Unlock()
	if b != nil {
		b.IncrInt64(n)
	}
}

func (o *output) BlobDone(d digest.Digest, err error) {
	if o.quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.bars[d]; b != nil {
		delete(o.bars, d)
		if err != nil {
			b.Abort(true)
		} else {
			b.SetTotal(-1, true)
		}
		return
	}
	if err == nil && o.p == nil {
		fmt.Fprintf(o.out, "wrote %s (%s)\n", short(d), o.started[d])
	}
}

func (o *output) ImageDone(r importer.ImageResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Err != nil {
		o.failures++
		fmt.Fprintf(o.errw, "ctr-seed: %s\n", oneLine(r.Err))
		return
	}
	if o.quiet {
		return
	}
	if r.Skipped != "" {
		line := fmt.Sprintf("skipped %s: %s\n", r.Target, r.Skipped)
		if o.p != nil {
			o.p.Write([]byte(line))
			return
		}
		io.WriteString(o.out, line)
		return
	}
	names := strings.Join(r.Names, ",")
	if names == "" {
		names = "<unnamed>"
	}
	line := fmt.Sprintf("imported %s %s: %s from seed, %s from registry, %.2fs\n", names, r.Target,
		progress.Bytes(r.FromSeed), progress.Bytes(r.FromRegistry), r.Duration.Seconds())
	if o.p != nil {
		o.p.Write([]byte(line))
		return
	}
	io.WriteString(o.out, line)
}

// Close waits for the bars to finish drawing.
func (o *output) Close() {
	if o.p != nil {
		o.p.Wait()
	}
}
