package fetcher

import "io"

// SeedError is an error of one seed: it says "seed S: " before Err. A
// caller that names the seed itself (the importer, importing the seed's
// images) takes Err instead, so that the seed is said once (OwnError).
type SeedError struct {
	Seed string
	Err  error
}

func (e *SeedError) Error() string { return "seed " + e.Seed + ": " + e.Err.Error() }

func (e *SeedError) Unwrap() error { return e.Err }

// OwnError is err without its "seed S: " when err is seed's own
// SeedError (at its top, before any text was added to it): for a caller
// that says the seed itself.
func OwnError(err error, seed string) error {
	if se, ok := err.(*SeedError); ok && se.Seed == seed {
		return se.Err
	}
	return err
}

// ownReader reads a blob of seed, its errors told without the seed's name.
type ownReader struct {
	io.ReadCloser
	seed string
}

func (r ownReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	return n, OwnError(err, r.seed)
}
