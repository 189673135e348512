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

	verb      string // "imported" or "pulled"
	mu        sync.Mutex
	p         *mpb.Progress // nil unless on a terminal
	bars      map[digest.Digest]*blobBar
	started   map[digest.Digest]string // digest → "size, source" for plain lines
	failures  int
	held      []heldLine // on a terminal: printed once the bars have stopped
	closeOnce sync.Once
}

// heldLine is a summary or error line kept until the bars stop: written
// while they redraw, a line can be wiped, or cut at the terminal's width.
type heldLine struct {
	w    io.Writer
	text string
}

func newOutput(cmd *cli.Command) *output {
	verb := "imported"
	if cmd.Name == "pull" {
		verb = "pulled"
	}
	o := &output{out: cmd.Root().Writer, errw: cmd.Root().ErrWriter, quiet: cmd.Bool("quiet"), verb: verb,
		bars: map[digest.Digest]*blobBar{}, started: map[digest.Digest]string{}}
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
	o.started[d] = fmt.Sprintf("%s from %s", sizeText(size), src)
	if o.p != nil {
		// One more than the blob's size, so that reading every byte does
		// not complete the bar: only the verified end does (a blob whose
		// digest fails at its end is shown failed, not done).
		bar := o.p.AddBar(size+1,
			mpb.PrependDecorators(decor.Name(short(d)+" ", decor.WCSyncSpaceR), decor.Name(string(src)+" ")),
			mpb.AppendDecorators(decor.OnAbort(decor.CountersKibiByte("% .1f / % .1f"), "failed")),
			mpb.BarRemoveOnComplete())
		o.bars[d] = &blobBar{Bar: bar}
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

// blobBar is one blob's bar.
type blobBar struct{ *mpb.Bar }

func (o *output) BlobDone(d digest.Digest, err error) {
	if o.quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.bars[d]; b != nil {
		delete(o.bars, d)
		if err != nil {
			b.Abort(false) // stays drawn, saying "failed"
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
		o.line(o.errw, fmt.Sprintf("ctr-seed: %s\n", oneLine(r.Err)))
		return
	}
	if o.quiet {
		return
	}
	if r.Warning != "" {
		what := fmt.Sprintf("seed %s: image %s (%s)", r.Seed, strings.Join(r.Names, ","), r.Target)
		o.line(o.errw, fmt.Sprintf("ctr-seed: warning: %s: %s\n", what, r.Warning))
	}
	if r.Skipped != "" {
		what := string(r.Target)
		if what == "" {
			what = r.Seed
		}
		o.line(o.out, fmt.Sprintf("skipped %s: %s\n", what, r.Skipped))
		return
	}
	names := strings.Join(r.Names, ",")
	if names == "" {
		names = "<unnamed>"
	}
	from := sizeText(r.FromSeed) + " from seed"
	if r.FromRegistry > 0 || o.verb == "pulled" {
		from += ", " + sizeText(r.FromRegistry) + " from registry"
	}
	if r.FromStore > 0 {
		from += fmt.Sprintf(", %d %s already in the store (not read from the seed)", r.FromStore, plural(r.FromStore, "blob", "blobs"))
	}
	o.line(o.out, fmt.Sprintf("%s %s %s: %s, %.2fs\n", o.verb, names, r.Target, from, r.Duration.Seconds()))
}

// line prints text to w now, or, on a terminal, once the bars stop.
func (o *output) line(w io.Writer, text string) {
	if o.p != nil {
		o.held = append(o.held, heldLine{w, text})
		return
	}
	io.WriteString(w, text)
}

// sizeText is a byte count as an operator reads it: "506 B", "1.5 MiB".
func sizeText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return progress.Bytes(n).String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Close stops the bars, then prints what was held for after them, so
// every line stays on the screen whole.
func (o *output) Close() {
	o.closeOnce.Do(func() {
		if o.p == nil {
			return
		}
		o.mu.Lock()
		for d, b := range o.bars {
			b.Abort(false) // a blob never finished (the run stopped)
			delete(o.bars, d)
		}
		o.mu.Unlock()
		o.p.Wait()
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, l := range o.held {
			io.WriteString(l.w, l.text)
		}
		o.held = nil
	})
}
