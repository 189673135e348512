// Command buildtools builds the peer tools the tests need from the Go
// module proxy (cosign, pinned in test/tools) into the harness's cache,
// so that `make test` pays for a cold build before the tests run, not
// inside one test's timeout.
package main

import (
	"fmt"
	"os"

	"github.com/ctr-seed/ctr-seed/test/harness"
)

func main() {
	p, err := harness.CosignMain()
	if err != nil {
		fmt.Fprintf(os.Stderr, "buildtools: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(p)
}
