// Package tools pins, in its own module so that their dependencies stay
// out of ctr-seed's, the versions of the peer tools the tests build from
// the Go module proxy: cosign (test/harness builds it, cached).
package tools
