package fetcher

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// OpenAll's one policy: a seed that does not open is one failure and the
// others still open; a file beside the seeds of a directory that is no
// archive is skipped; a file named that is no archive is a failure.
func TestOpenAll(t *testing.T) {
	f := newFixture(t)
	good := f.write(t, "oci-tar")
	dir := t.TempDir()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a.tar": b, "README": []byte("seeds\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readme := filepath.Join(dir, "README")
	missing := filepath.Join(dir, "missing.tar")
	var stdin bytes.Buffer
	if err := f.seed.WriteOCITar(&stdin); err != nil {
		t.Fatal(err)
	}
	seeds, bad := OpenAll(context.Background(), []string{missing, dir, readme, "-"}, WithStdin(&stdin))
	defer seeds.Close()
	if len(seeds) != 2 || seeds[0].Path() != filepath.Join(dir, "a.tar") || seeds[1].Path() != stdinName {
		t.Errorf("opened %d seeds, want the one in %s and stdin's", len(seeds), dir)
	}
	if len(bad) != 3 {
		t.Fatalf("unopened: %+v, want 3", bad)
	}
	if bad[0].Path != missing || !errors.Is(bad[0].Err, fs.ErrNotExist) {
		t.Errorf("missing seed: %+v, want its not-exist error", bad[0])
	}
	if bad[1].Path != readme || bad[1].Err != nil || bad[1].Skipped == "" {
		t.Errorf("README beside the seeds: %+v, want skipped", bad[1])
	}
	if bad[2].Path != readme || !errors.Is(bad[2].Err, ErrNotArchive) {
		t.Errorf("README named: %+v, want ErrNotArchive", bad[2])
	}
}
