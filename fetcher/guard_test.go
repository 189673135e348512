package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/testseed"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layerTarOf is a one-file layer tar holding body.
func layerTarOf(t testing.TB, body []byte) []byte {
	t.Helper()
	return testutil.RawTar(t, testutil.RawEntry{Name: "payload", Body: body})
}

// layerSeed writes an OCI layout tar with one image whose only layer is
// blob, of media type mt, and returns its path and the layer descriptor.
func layerSeed(t testing.TB, mt string, blob []byte, diffID digest.Digest) (string, ocispec.Descriptor) {
	t.Helper()
	layer := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	cb, _ := json.Marshal(ocispec.Image{Platform: amd64, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}})
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}})
	man := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	p := testutil.WriteFile(t, filepath.Join(t.TempDir(), "seed.tar"), layoutWith(t, man,
		rawEntry{Name: blobPath(man.Digest), Body: mb},
		rawEntry{Name: blobPath(cfg.Digest), Body: cb},
		rawEntry{Name: blobPath(layer.Digest), Body: blob}))
	return p, layer
}

// zeroLayer is a layer of n zero bytes, compressed with c: a small bomb.
func zeroLayer(t testing.TB, n int, c testseed.Compression) ([]byte, digest.Digest) {
	raw := layerTarOf(t, make([]byte, n))
	return compress(t, raw, c), digest.FromBytes(raw)
}

func openWith(t testing.TB, p string, opts ...Opt) *Seed {
	t.Helper()
	s, err := Open(context.Background(), p, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// drain reads desc to the end and returns how much was read and the error.
func drain(t *testing.T, s *Seed, desc ocispec.Descriptor) (int64, error) {
	t.Helper()
	rc, err := s.Fetch(context.Background(), desc)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

var bombRE = regexp.MustCompile(`decompression bomb: expands beyond ([0-9]+) bytes \(ratio ([0-9]+):1 of ([0-9]+) compressed\)`)

func wantBomb(t *testing.T, err error, p string, layer ocispec.Descriptor, limit int64) {
	t.Helper()
	wantMsg(t, err, "seed "+p+": blob "+layer.Digest.String()+": decompression bomb: expands beyond "+strconv.FormatInt(limit, 10)+" bytes (ratio ")
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("bomb error class: %v", err)
	}
	m := bombRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not match %s", err, bombRE)
	}
	ratio, _ := strconv.ParseInt(m[2], 10, 64)
	if m[3] != strconv.FormatInt(layer.Size, 10) || ratio < limit/layer.Size {
		t.Errorf("error %q: want %d compressed and a ratio of at least %d", err, layer.Size, limit/layer.Size)
	}
}

func TestGuardBomb(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    testseed.Compression
		mt   string
	}{
		{"gzip", testseed.Gzip, ocispec.MediaTypeImageLayerGzip},
		{"zstd", testseed.Zstd, ocispec.MediaTypeImageLayerZstd},
		{"docker-gzip", testseed.Gzip, testseed.MediaTypeDockerLayerGzip},
		// docker's plain layer type: the applier sniffs and decompresses.
		{"docker-tar-holding-gzip", testseed.Gzip, testseed.MediaTypeDockerLayer},
		// a gzip media type over zstd content: the applier sniffs too.
		{"gzip-type-zstd-content", testseed.Zstd, ocispec.MediaTypeImageLayerGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, diffID := zeroLayer(t, 8<<20, tc.c) // 8 MiB of zeros: ~8 KB
			p, layer := layerSeed(t, tc.mt, blob, diffID)

			// Defaults: far beyond 200:1, but under the 1 GiB allowance.
			if _, err := drain(t, openWith(t, p), layer); err != nil {
				t.Fatalf("default limits refused a small zero-filled layer: %v", err)
			}
			if errs := openWith(t, p).Verify(context.Background()); len(errs) != 0 {
				t.Fatalf("verify with default limits: %v", errs)
			}

			// Ratio 10, no allowance: the cap is 10 × compressed.
			s := openWith(t, p, WithLayerLimits(10, 0))
			_, err := drain(t, s, layer)
			wantBomb(t, err, p, layer, 10*layer.Size)
			errs := s.Verify(context.Background())
			if len(errs) != 1 {
				t.Fatalf("verify: %v, want one problem", errs)
			}
			wantBomb(t, errs[0], p, layer, 10*layer.Size)

			// The allowance lifts the cap for small layers.
			if _, err := drain(t, openWith(t, p, WithLayerLimits(10, 16<<20)), layer); err != nil {
				t.Errorf("allowance of 16 MiB, 8 MiB layer: %v", err)
			}
			// The absolute cap applies whatever the ratio, even with none.
			_, err = drain(t, openWith(t, p, WithLayerLimits(0, 0), WithMaxLayerBytes(1<<20)), layer)
			wantBomb(t, err, p, layer, 1<<20)
			errs = openWith(t, p, WithLayerLimits(0, 0), WithMaxLayerBytes(1<<20)).Verify(context.Background())
			if len(errs) != 1 {
				t.Fatalf("verify: %v, want one problem", errs)
			}
			wantBomb(t, errs[0], p, layer, 1<<20)
			// Ratio 0 and no absolute cap: nothing is counted.
			if _, err := drain(t, openWith(t, p, WithLayerLimits(0, 0)), layer); err != nil {
				t.Errorf("limits off: %v", err)
			}
		})
	}
}

// The guard fails the stream early: a bomb is not read to its end.
func TestGuardFailsEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 8<<20) // incompressible: the blob is ~8 MiB
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	raw := layerTarOf(t, body)
	blob := compress(t, raw, testseed.Gzip)
	p, layer := layerSeed(t, ocispec.MediaTypeImageLayerGzip, blob, digest.FromBytes(raw))
	s := openWith(t, p, WithMaxLayerBytes(64<<10))
	n, err := drain(t, s, layer)
	wantBomb(t, err, p, layer, 64<<10)
	if n >= layer.Size/2 {
		t.Errorf("read %d of %d bytes before failing", n, layer.Size)
	}
	// Under the cap the stream is untouched.
	if b := readAll(t, openWith(t, p, WithMaxLayerBytes(int64(len(raw)))), layer); !bytes.Equal(b, blob) {
		t.Errorf("guarded stream differs from the blob")
	}
}

// Layers the applier takes as plain tars are checked by size alone, and
// only against the absolute cap; content it would refuse is not counted.
func TestGuardPlainAndOddLayers(t *testing.T) {
	raw := layerTarOf(t, make([]byte, 1<<20))
	p, layer := layerSeed(t, ocispec.MediaTypeImageLayer, raw, digest.FromBytes(raw))
	if _, err := drain(t, openWith(t, p, WithLayerLimits(1, 0)), layer); err != nil {
		t.Errorf("plain layer, ratio 1: %v", err)
	}
	s := openWith(t, p, WithMaxLayerBytes(4096))
	_, err := drain(t, s, layer)
	wantMsg(t, err, "seed "+p+": blob "+layer.Digest.String()+": uncompressed layer of "+strconv.Itoa(len(raw))+" bytes is beyond the 4096 byte cap")
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("error class: %v", err)
	}
	errs := s.Verify(context.Background())
	if len(errs) != 1 {
		t.Fatalf("verify: %v", errs)
	}
	wantMsg(t, errs[0], "uncompressed layer of "+strconv.Itoa(len(raw))+" bytes is beyond the 4096 byte cap")

	// Plain content under a gzip type (the applier sniffs it as plain).
	p, layer = layerSeed(t, ocispec.MediaTypeImageLayerGzip, raw, digest.FromBytes(raw))
	if _, err := drain(t, openWith(t, p, WithLayerLimits(1, 0)), layer); err != nil {
		t.Errorf("plain content under a gzip type, ratio 1: %v", err)
	}
	_, err = drain(t, openWith(t, p, WithMaxLayerBytes(4096)), layer)
	wantMsg(t, err, "uncompressed layer of "+strconv.Itoa(len(raw))+" bytes is beyond the 4096 byte cap")

	// Not gzip at all under a gzip type, and a gzip stream cut short: the
	// guard passes them (the applier fails them), it does not hang.
	junk := append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("junk"), 1<<16)...)
	p, layer = layerSeed(t, ocispec.MediaTypeImageLayerGzip, junk, digest.FromString("x"))
	if _, err := drain(t, openWith(t, p, WithLayerLimits(1, 0)), layer); err != nil {
		t.Errorf("corrupt gzip: %v", err)
	}
	blob, _ := zeroLayer(t, 8<<20, testseed.Gzip)
	cut := blob[:len(blob)/2]
	p, layer = layerSeed(t, ocispec.MediaTypeImageLayerGzip, cut, digest.FromString("x"))
	if _, err := drain(t, openWith(t, p, WithLayerLimits(1000, 0)), layer); err != nil {
		t.Errorf("truncated gzip under the cap: %v", err)
	}
	// Not a layer: never counted.
	p, layer = layerSeed(t, "application/vnd.example.data", blob, digest.FromString("x"))
	if _, err := drain(t, openWith(t, p, WithLayerLimits(1, 0)), layer); err != nil {
		t.Errorf("non-layer blob: %v", err)
	}
}

// A corrupt bomb: either failure is a failure, and the stream never succeeds.
func TestGuardCorruptBomb(t *testing.T) {
	blob, diffID := zeroLayer(t, 8<<20, testseed.Gzip)
	p, layer := layerSeed(t, ocispec.MediaTypeImageLayerGzip, blob, diffID)
	layer.Digest = digest.FromString("another blob")
	s := openWith(t, p, WithLayerLimits(10, 0))
	s.files[layer.Digest] = blobPath(digest.FromBytes(blob))
	_, err := drain(t, s, layer)
	if err == nil || (!errdefs.IsInvalidArgument(err) && !errdefs.IsDataLoss(err)) {
		t.Fatalf("corrupt bomb: %v", err)
	}
}

// The counter goroutine ends with the stream: at EOF, on Close mid-way,
// on Close before any read, and after a bomb.
func TestGuardNoLeak(t *testing.T) {
	blob, diffID := zeroLayer(t, 32<<20, testseed.Gzip)
	p, layer := layerSeed(t, ocispec.MediaTypeImageLayerGzip, blob, diffID)
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for _, lim := range []Opt{WithLayerLimits(1000, 0), WithLayerLimits(2, 0)} {
		s := openWith(t, p, lim)
		for range 20 {
			rc, err := s.Fetch(ctx, layer)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()

			rc, _ = s.Fetch(ctx, layer)
			rc.Read(make([]byte, 100))
			rc.Close()

			rc, _ = s.Fetch(ctx, layer)
			rc.Close()
			rc.Close() // twice is harmless
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// A byte-at-a-time reader still gets the whole verified blob, and Read
// after the end keeps returning EOF.
func TestGuardSmallReads(t *testing.T) {
	blob, diffID := zeroLayer(t, 1<<20, testseed.Zstd)
	p, layer := layerSeed(t, ocispec.MediaTypeImageLayerZstd, blob, diffID)
	rc, err := openWith(t, p, WithLayerLimits(200, 2<<20)).Fetch(context.Background(), layer)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	one := make([]byte, 1)
	for {
		n, err := rc.Read(one)
		got.Write(one[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), blob) {
		t.Fatal("blob differs")
	}
	if n, err := rc.Read(one); n != 0 || err != io.EOF {
		t.Errorf("read after EOF: %d, %v", n, err)
	}
}

func TestLayerLimitsArithmetic(t *testing.T) {
	for _, tc := range []struct {
		l          layerLimits
		compressed int64
		want       int64
		ok         bool
	}{
		{defaultLayerLimits, 1 << 20, 1 << 30, true},
		{defaultLayerLimits, 10 << 20, 2000 << 20, true},
		{layerLimits{ratio: 200}, math.MaxInt64 / 100, math.MaxInt64, true},
		{layerLimits{}, 1 << 20, math.MaxInt64, false},
		{layerLimits{maxBytes: 5}, 1 << 20, 5, true},
		{layerLimits{ratio: 200, allowance: 1 << 30, maxBytes: 1 << 40}, 1 << 20, 1 << 30, true},
	} {
		if got, ok := tc.l.limit(tc.compressed); got != tc.want || ok != tc.ok {
			t.Errorf("%+v.limit(%d) = %d, %v; want %d, %v", tc.l, tc.compressed, got, ok, tc.want, tc.ok)
		}
	}
}
