package importer

import "fmt"

// Summary counts what a run did with its results: the one tally the CLI,
// serve, the plugin and the --in-daemon service all report.
type Summary struct {
	// Total is the results that were tried: a failure, or an image (or
	// index) that landed. An entry skipped on purpose (another platform,
	// an artifact, a file beside seeds that is no archive) was not tried
	// and is not counted here.
	Total int
	// Failed is the results with an error.
	Failed int
	// Skipped is the results left out on purpose.
	Skipped int
}

// Summarize counts results.
func Summarize(results []ImageResult) Summary {
	var s Summary
	for _, r := range results {
		switch {
		case r.Err != nil:
			s.Failed++
			s.Total++
		case r.Skipped != "":
			s.Skipped++
		default:
			s.Total++
		}
	}
	return s
}

// String is the summary line: "1 of 3 images failed".
func (s Summary) String() string {
	return fmt.Sprintf("%d of %d images failed", s.Failed, s.Total)
}

// Err is nil when nothing failed, else a *FailedError with the counts.
func (s Summary) Err() error {
	if s.Failed == 0 {
		return nil
	}
	return &FailedError{Failed: s.Failed, Total: s.Total}
}
