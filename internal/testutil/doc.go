// Package testutil holds the test helpers that package-level unit tests
// (fetcher, importer, cmd) share with the integration tests under test/:
// hand-made tar archives, seeds compressed as a whole, and output
// trimming. It depends on nothing heavier than testseed, so any test
// package can import it; what needs a containerd daemon or client lives in
// test/harness instead.
package testutil
