// Command containerd-seed is containerd — its own command, with all of
// containerd's builtin plugins — plus the seed importer plugin, the way k3s
// and stargz-snapshotter build theirs. Use it as a drop-in containerd.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	"github.com/containerd/containerd/v2/version"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
	_ "github.com/ctr-seed/ctr-seed/plugin"
)

// seedVersion is set with -ldflags "-X main.seedVersion=..."; otherwise the
// module version is used.
var seedVersion = ""

func main() {
	app := command.App()
	app.Name = "containerd-seed"
	// --version prints both: "containerd-seed <pkg> 2.4.2, ctr-seed v0.1.0".
	app.Version = fmt.Sprintf("%s, ctr-seed %s", version.Version, ctrSeedVersion())
	if err := app.Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "containerd-seed:", err)
		os.Exit(1)
	}
}

func ctrSeedVersion() string {
	if seedVersion != "" {
		return seedVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
