package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/v2/pkg/progress"
	"github.com/ctr-seed/ctr-seed/test/harness"
)

const (
	caseFresh    = "fresh"
	caseReimport = "re-import"
	caseNoUnpack = "no-unpack"
)

var cases = []string{caseFresh, caseReimport, caseNoUnpack}

// targets are issue 17's goals for tool/ctr (wall time, medians), the
// same for the CLI and --in-daemon.
var targets = map[string]float64{caseFresh: 0.4, caseReimport: 0.02, caseNoUnpack: 0.3}

func target(_, c string) float64 { return targets[c] }

const rssTargetMB = 64

type sample struct {
	wall      time.Duration
	cpu       time.Duration // the client's user+sys
	daemonCPU time.Duration // containerd's user+sys over the same span
	rssKiB    int64         // the client's peak RSS
}

// results[case][tool] holds the samples in run order.
type results map[string]map[string][]sample

func (r results) add(c, tool string, s sample) {
	if r[c] == nil {
		r[c] = map[string][]sample{}
	}
	r[c][tool] = append(r[c][tool], s)
}

// reported are the tools in the tables: the timed ones, then the plugin.
func (b *bench) reported() []tool {
	return append(slices.Clone(b.tools), tool{name: toolPlugin})
}

func (b *bench) report(w io.Writer) {
	fmt.Fprintf(w, "== results: %d pair(s), seed %s (%d files, %s)\n", b.pairs,
		filepath.Base(b.seed.Path), b.seed.Files, progress.Bytes(b.seed.Size))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\ttool\tmedian\tmin–max\tclient cpu\tdaemon cpu\tpeak RSS\t")
	for _, c := range cases {
		for _, t := range b.reported() {
			ss := b.res[c][t.name]
			if len(ss) == 0 {
				continue
			}
			lo, hi := minMax(ss, wallOf)
			fmt.Fprintf(tw, "%s\t%s\t%.2fs\t%.2f–%.2fs\t%.2fs\t%.2fs\t%d MB\t\n", c, t.name,
				median(ss, wallOf).Seconds(), lo.Seconds(), hi.Seconds(),
				median(ss, cpuOf).Seconds(), median(ss, daemonOf).Seconds(), maxRSS(ss)/1024)
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\ntool/ctr (median wall time; in brackets, the range of the per-round ratios):")
	var missed []string
	for _, t := range b.reported() {
		if t.name == "ctr" {
			continue
		}
		for _, c := range cases {
			a, o := b.res[c][t.name], b.res[c]["ctr"]
			if len(a) == 0 || len(o) == 0 {
				continue
			}
			ratio := median(a, wallOf).Seconds() / median(o, wallOf).Seconds()
			lo, hi := roundRatios(a, o)
			fmt.Fprintf(w, "  %-9s %-10s %.3f×  [%.2f–%.2f]  (target ≤ %.2g×)\n", t.name, c, ratio, lo, hi, target(t.name, c))
			if ratio > target(t.name, c) {
				missed = append(missed, fmt.Sprintf("TARGET MISSED: %s %s/ctr = %.3f×, target ≤ %.2g×", c, t.name, ratio, target(t.name, c)))
			}
		}
	}
	if fl := b.res[caseFresh][toolFloor]; len(fl) > 0 {
		floor := median(fl, wallOf).Seconds()
		fmt.Fprintf(w, "against the floor (%s: copy the layer blobs, decompress and untar them all at once, sync; median %.2fs):\n",
			strings.Fields(decompressor())[0], floor)
		for _, t := range b.reported() {
			if ss := b.res[caseFresh][t.name]; len(ss) > 0 {
				r := median(ss, wallOf).Seconds() / floor
				fmt.Fprintf(w, "  %-9s %-10s %.2f× the floor (target ≤ 1.2×)\n", t.name, caseFresh, r)
				if r > 1.2 && t.name != "ctr" {
					missed = append(missed, fmt.Sprintf("TARGET MISSED: %s %s = %.2f× the floor, target ≤ 1.2×", t.name, caseFresh, r))
				}
			}
		}
	}
	if b.bootLast > 0 {
		fmt.Fprintf(w, "plugin boot, %d seeds of 2-20 MiB in its directory: first image %.2fs, last %.2fs after the daemon's start\n",
			bootSeeds, b.bootFirst.Seconds(), b.bootLast.Seconds())
	}
	var peak int64
	for _, c := range cases {
		peak = max(peak, maxRSS(b.res[c]["ctr-seed"]))
	}
	peakMB := float64(peak) / 1024
	fmt.Fprintf(w, "ctr-seed peak RSS: %.1f MB over all runs (target ≤ %d MB; seed %s)\n", peakMB, rssTargetMB, b.size)
	if peakMB > rssTargetMB {
		missed = append(missed, fmt.Sprintf("TARGET MISSED: ctr-seed peak RSS = %.1f MB, target ≤ %d MB", peakMB, rssTargetMB))
	}
	fmt.Fprintln(w)
	if len(missed) == 0 {
		fmt.Fprintln(w, "all targets met")
	}
	for _, m := range missed {
		fmt.Fprintln(w, m)
	}
}

// roundRatios is the range of a[i]/o[i], round by round.
func roundRatios(a, o []sample) (lo, hi float64) {
	lo = 1e9
	for i := range min(len(a), len(o)) {
		r := a[i].wall.Seconds() / o[i].wall.Seconds()
		lo, hi = min(lo, r), max(hi, r)
	}
	return lo, hi
}

func wallOf(s sample) time.Duration   { return s.wall }
func cpuOf(s sample) time.Duration    { return s.cpu }
func daemonOf(s sample) time.Duration { return s.daemonCPU }

// median of an even count is the mean of the middle two.
func median(ss []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func minMax(ss []sample, f func(sample) time.Duration) (time.Duration, time.Duration) {
	lo, hi := f(ss[0]), f(ss[0])
	for _, s := range ss[1:] {
		lo, hi = min(lo, f(s)), max(hi, f(s))
	}
	return lo, hi
}

func maxRSS(ss []sample) int64 {
	var m int64
	for _, s := range ss {
		m = max(m, s.rssKiB)
	}
	return m
}

// daemonPID finds the daemon's process by its command line (the harness
// does not export it): the one whose argv is "... --config <ConfigPath>".
// 0 if not found; then daemon CPU reads as 0.
func daemonPID(d *harness.Daemon) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[1] == "--config" && args[2] == d.ConfigPath {
			return pid
		}
	}
	return 0
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// procCPU is a process's user+system time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at state;
	// utime and stime are fields 14 and 15, i.e. 11 and 12 after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTick
}
