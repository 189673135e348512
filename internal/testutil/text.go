package testutil

import (
	"maps"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// Tail is the last n lines of s: what a failure message shows of a long
// log.
func Tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// Lines splits output into its lines; empty output has none (not one
// empty line), and a final newline does not make an empty last line.
func Lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Short is how ctr-seed prints a digest in its wrote lines:
// algorithm:first 12 hex digits.
func Short(d digest.Digest) string { return d.Algorithm().String() + ":" + d.Encoded()[:12] }

// Keys is the keys of m, sorted: what a failure message lists.
func Keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
