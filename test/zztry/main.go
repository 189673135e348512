package main

import (
	"fmt"
	"os"
	"os/signal"

	"github.com/ctr-seed/ctr-seed/test/harness"
)

func main() {
	d, err := harness.StartDaemonMain(harness.DaemonOptions{DisableCRI: true})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer d.Cleanup()
	os.WriteFile("/tmp/try.addr", []byte(d.Address), 0o644)
	fmt.Println(d.Address)
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	<-c
}
