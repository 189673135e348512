// Command ctr-seed lists, verifies and imports seeds (container image
// archives) for containerd nodes with little or no network.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/containerd/log"
	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(interrupted{sig.(syscall.Signal)})
		<-sigs // a second signal kills at once
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	if os.Getenv("GOGC") == "" {
		// Every byte of a seed streams through a few fixed buffers, so the
		// heap's live part is small and steady (about 20 MB); half the
		// default headroom over it keeps a fresh import's peak RSS 3-5 MB
		// lower for a few more collections (measured: 52-53 MB against
		// 56-57 MB on the bench's small seed, the same time).
		debug.SetGCPercent(50)
	}
	stopProfile := startProfile(os.Getenv("CTR_SEED_CPUPROFILE"))
	code := run(ctx, os.Args)
	stopProfile()
	var in interrupted
	if errors.As(context.Cause(ctx), &in) && code != 0 {
		// 130 for SIGINT, 143 for SIGTERM, as shells report them; a
		// command that stopped cleanly on the signal (serve) exits 0.
		code = 128 + int(in.sig)
	}
	os.Exit(code)
}

// interrupted is the cancellation cause when a signal stops the command;
// cleanup (lease deletion) still runs before exit.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string {
	return "stopped by " + unix.SignalName(i.sig)
}

// run executes the CLI and maps errors to exit codes: 2 for usage, 1 otherwise.
func run(ctx context.Context, args []string) int {
	app := newApp()
	err := app.Run(ctx, args)
	if err == nil {
		return 0
	}
	var failed *importer.FailedError
	if errors.As(err, &failed) {
		// Each failure has been printed, one line each, as it happened;
		// a tally helps only when there were several.
		if failed.Failed > 1 {
			fmt.Fprintf(os.Stderr, "ctr-seed: %s\n", oneLine(err))
		}
		return 1
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "ctr-seed: %s\n", oneLine(err))
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "ctr-seed: %s\n", oneLine(errors.New(msg)))
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "ctr-seed: %s\n", oneLine(err))
	return 1
}

// oneLine is an error as the operator reads it, once: one line (a
// registry's error body arrives after a newline), without the error
// classes that end containerd's error chains (": invalid argument",
// ": data loss": they are for code, errdefs, not for the screen), and
// without a "seed X: " said a second time by an inner error.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.Join(strings.Fields(l), " ")
		// containerd's parallel unpacker adds "aborted" for every layer
		// after the one that failed: noise once the cause is said.
		if l == "" || (l == "aborted" && len(parts) > 0) {
			continue
		}
		if l = dropRepeatedSeed(dropClasses(l)); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ; ")
}

// errorClasses are errdefs' error texts, as they end wrapped errors.
var errorClasses = regexp.MustCompile(`(: (invalid argument|not found|already exists|permission denied|resource exhausted|failed precondition|conflict|not modified|aborted|out of range|not implemented|internal|unavailable|data loss|unauthenticated|unknown))+(:| \(|$)`)

func dropClasses(l string) string {
	return errorClasses.ReplaceAllStringFunc(l, func(m string) string {
		switch {
		case strings.HasSuffix(m, ":"):
			return ":"
		case strings.HasSuffix(m, " ("): // "…: not found (offline: …)"
			return " ("
		}
		return ""
	})
}

var seedPrefix = regexp.MustCompile(`^(ctr-seed: )?(seed [^:]+: )`)

func dropRepeatedSeed(l string) string {
	m := seedPrefix.FindStringSubmatchIndex(l)
	if m == nil {
		return l
	}
	head, rest := l[:m[1]], l[m[1]:]
	return head + strings.ReplaceAll(rest, l[m[4]:m[5]], "")
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func onUsageError(_ context.Context, _ *cli.Command, err error, _ bool) error {
	return usageError{err}
}

func newApp() *cli.Command {
	cmds := []*cli.Command{lsCommand(), verifyCommand(), importCommand(), pullCommand(), saveCommand(), inventoryCommand(), pushCommand(), hostsCommand(), serveCommand(), versionCommand()}
	for _, c := range cmds {
		c.OnUsageError = onUsageError
	}
	return &cli.Command{
		Name:    "ctr-seed",
		Usage:   "get container images onto containerd nodes from seeds (image archives)",
		Version: version,
		Flags:   globalFlags(),
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			if cmd.Bool("debug") {
				return ctx, log.SetLevel("debug")
			}
			// containerd's own log lines (a failed fetch's retry, an
			// unpacker's cleanup) are not ours to print: errors reach the
			// user as one line each. serve, a service, logs again.
			log.L.Logger.SetOutput(io.Discard)
			return ctx, nil
		},
		Commands:     cmds,
		OnUsageError: onUsageError,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 0 {
				return usageError{fmt.Errorf("unknown command %q (see ctr-seed --help)", cmd.Args().First())}
			}
			return cli.ShowAppHelp(cmd)
		},
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
}

// needArgs is a usage check for commands that take seeds.
func needArgs(cmd *cli.Command, what string) error {
	if cmd.Args().Len() == 0 {
		return usageError{fmt.Errorf("%s: at least one %s is required", cmd.Name, what)}
	}
	return nil
}

// startProfile writes a CPU profile to path (for make bench and
// performance work); "%p" in path is the pid; "" profiles nothing.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", fmt.Sprint(os.Getpid()))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ctr-seed: CTR_SEED_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
