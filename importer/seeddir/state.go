package seeddir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// stateFile records which seeds were imported, so an unchanged seed is not
// imported again after a restart.
const stateFile = "state.json"

// fingerprint identifies a version of a seed without reading it.
type fingerprint struct {
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	Inode uint64    `json:"inode"`
}

// record is what the service remembers of one seed.
type record struct {
	Fingerprint fingerprint `json:"fingerprint"`
	Images      []string    `json:"images,omitempty"`
	// Version is the seed's io.ctr-seed.seed.version label (its index
	// digest; a list's, the digest of its bytes): an image another seed
	// brings too is relabelled with it when that one leaves (prune).
	Version    string    `json:"version,omitempty"`
	ImportedAt time.Time `json:"imported_at"`
	// Error is set when the seed failed; it is not retried until it
	// changes (or the service restarts), unless Retry says the failure
	// was the node's (the import's lease deleted under it): then the next
	// rescan tries it again.
	Error string `json:"error,omitempty"`
	Retry bool   `json:"retry,omitempty"`
	// NotArchive marks a file that is no image archive at all (a README):
	// skipped, and said so once, not as an error at every start.
	NotArchive bool `json:"not_archive,omitempty"`
	// An image list that failed is tried again from RetryAt on, its
	// Attempts-th failure setting the backoff.
	Attempts int       `json:"attempts,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitempty"`
}

type state struct {
	mu    sync.Mutex
	path  string
	Seeds map[string]record `json:"seeds"`
}

func loadState(dir string) (*state, error) {
	s := &state{path: filepath.Join(dir, stateFile), Seeds: map[string]record{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		// A damaged state only costs a re-import: start afresh.
		return &state{path: s.path, Seeds: map[string]record{}}, nil
	}
	if s.Seeds == nil {
		s.Seeds = map[string]record{}
	}
	return s, nil
}

func (s *state) get(name string) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.Seeds[name]
	return r, ok
}

func (s *state) put(name string, r record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Seeds[name] = r
	return s.save()
}

func (s *state) forget(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.Seeds[name]; !ok {
		return nil
	}
	delete(s.Seeds, name)
	return s.save()
}

// bringing returns the first (by name) seed other than except whose
// record lists the image name, and its record.
func (s *state) bringing(image, except string) (string, record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seeds []string
	for n, r := range s.Seeds {
		if n != except && slices.Contains(r.Images, image) {
			seeds = append(seeds, n)
		}
	}
	if len(seeds) == 0 {
		return "", record{}, false
	}
	slices.Sort(seeds)
	return seeds[0], s.Seeds[seeds[0]], true
}

// prune forgets every seed not in present, and returns their names.
func (s *state) prune(present []string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := make(map[string]bool, len(present))
	for _, n := range present {
		keep[n] = true
	}
	var gone []string
	for n := range s.Seeds {
		if !keep[n] {
			delete(s.Seeds, n)
			gone = append(gone, n)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, s.save()
}

// save writes the state atomically: a crash leaves the old or the new file.
func (s *state) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}
