package layerlimit

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/ctr-seed/ctr-seed/internal/setting"
	"github.com/ctr-seed/ctr-seed/internal/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"

// layerTar is a one-file layer tar holding body.
func layerTar(t testing.TB, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "payload", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte, opts ...zstd.EOption) []byte {
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func descOf(mt string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

// guarded streams blob through Guard and returns how much came out and
// the error.
func guarded(t *testing.T, l Limits, desc ocispec.Descriptor, blob []byte) (int64, error) {
	t.Helper()
	c, ok := l.Cap(desc)
	if !ok {
		t.Fatalf("%+v: no cap for %s", l, desc.MediaType)
	}
	rc := c.Guard(io.NopCloser(bytes.NewReader(blob)))
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

func checked(t *testing.T, l Limits, desc ocispec.Descriptor, blob []byte) error {
	t.Helper()
	c, ok := l.Cap(desc)
	if !ok {
		t.Fatalf("%+v: no cap for %s", l, desc.MediaType)
	}
	return c.Check(bytes.NewReader(blob))
}

var bombRE = regexp.MustCompile(`^layer (sha256:[0-9a-f]{64}): decompression bomb: expands beyond ([0-9]+) bytes \(ratio ([0-9]+):1 of ([0-9]+) compressed\): invalid argument$`)

func wantBomb(t *testing.T, err error, desc ocispec.Descriptor, limit int64) {
	t.Helper()
	if !errors.Is(err, ErrBomb) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("error %v: want ErrBomb and invalid argument", err)
	}
	m := bombRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not match %s", err, bombRE)
	}
	ratio, _ := strconv.ParseInt(m[3], 10, 64)
	if m[1] != desc.Digest.String() || m[2] != strconv.FormatInt(limit, 10) || m[4] != strconv.FormatInt(desc.Size, 10) || ratio < limit/desc.Size {
		t.Errorf("error %q: want layer %s, cap %d, %d compressed, ratio at least %d", err, desc.Digest, limit, desc.Size, limit/desc.Size)
	}
}

// layerCase is a layer blob of a media type, named for its subtest.
type layerCase struct {
	name string
	blob []byte
	mt   string
}

func TestBomb(t *testing.T) {
	raw := layerTar(t, make([]byte, 8<<20)) // 8 MiB of zeros: a few KB compressed
	for _, tc := range []layerCase{
		{"gzip", gz(t, raw), ocispec.MediaTypeImageLayerGzip},
		{"zstd", zst(t, raw), ocispec.MediaTypeImageLayerZstd},
		// docker's plain layer type: the applier sniffs and decompresses.
		{"docker-tar-holding-gzip", gz(t, raw), dockerLayer},
		// a gzip media type over zstd content: the applier sniffs too.
		{"gzip-type-zstd-content", zst(t, raw), ocispec.MediaTypeImageLayerGzip},
		// a skippable frame first: containerd still takes it for zstd.
		{"zstd-skippable-first", append(skippable(64), zst(t, raw)...), ocispec.MediaTypeImageLayerZstd},
		// a 64 MiB window: containerd decodes it, so it is counted.
		{"zstd-64MiB-window", zst(t, raw, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(false)), ocispec.MediaTypeImageLayerZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := descOf(tc.mt, tc.blob)
			for _, f := range []func(Limits) error{
				func(l Limits) error { _, err := guarded(t, l, desc, tc.blob); return err },
				func(l Limits) error { return checked(t, l, desc, tc.blob) },
			} {
				// Defaults: far beyond 200:1, but under the 1 GiB allowance.
				if err := f(Default()); err != nil {
					t.Fatalf("default limits refused a small zero-filled layer: %v", err)
				}
				// Ratio 10, no allowance: the cap is 10 × compressed.
				wantBomb(t, f(Limits{Ratio: 10}), desc, 10*desc.Size)
				// The allowance lifts the cap for small layers.
				if err := f(Limits{Ratio: 10, Allowance: 16 << 20}); err != nil {
					t.Errorf("allowance of 16 MiB, 8 MiB layer: %v", err)
				}
				// The absolute cap applies whatever the ratio, even with none.
				wantBomb(t, f(Limits{MaxBytes: 1 << 20}), desc, 1<<20)
			}
			// Ratio 0 and no absolute cap: nothing is counted.
			if _, ok := (Limits{}).Cap(desc); ok {
				t.Errorf("limits off still cap")
			}
			// The decompressed-stream cap says the same.
			c, _ := Limits{MaxBytes: 1 << 20}.Cap(desc)
			_, err := io.Copy(io.Discard, c.Reader(bytes.NewReader(raw)))
			wantBomb(t, err, desc, 1<<20)
		})
	}
}

// skippable is a zstd skippable frame of n bytes of payload.
func skippable(n int) []byte {
	b := make([]byte, 8+n)
	binary.LittleEndian.PutUint32(b, 0x184D2A50)
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	return b
}

// The guard fails the stream early: a bomb is not read to its end.
func TestGuardFailsEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 8<<20) // incompressible: the blob is ~8 MiB
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	raw := layerTar(t, body)
	blob := gz(t, raw)
	desc := descOf(ocispec.MediaTypeImageLayerGzip, blob)
	n, err := guarded(t, Limits{MaxBytes: 64 << 10}, desc, blob)
	wantBomb(t, err, desc, 64<<10)
	if n >= desc.Size/2 {
		t.Errorf("read %d of %d bytes before failing", n, desc.Size)
	}
	// Under the cap the stream is untouched.
	c, _ := Limits{MaxBytes: int64(len(raw))}.Cap(desc)
	rc := c.Guard(io.NopCloser(bytes.NewReader(blob)))
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("guarded stream differs from the blob (%v)", err)
	}
}

// Layers the applier takes as plain tars are checked by size alone.
func TestPlainLayers(t *testing.T) {
	raw := layerTar(t, make([]byte, 1<<20))
	for _, mt := range []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip} {
		desc := descOf(mt, raw)
		if _, err := guarded(t, Limits{Ratio: 1}, desc, raw); err != nil {
			t.Errorf("%s: plain content, ratio 1: %v", mt, err)
		}
		_, err := guarded(t, Limits{MaxBytes: 4096}, desc, raw)
		wantBomb(t, err, desc, 4096)
		wantBomb(t, checked(t, Limits{MaxBytes: 4096}, desc, raw), desc, 4096)
	}
	// Not a layer: never capped.
	if _, ok := Default().Cap(descOf("application/vnd.example.data", raw)); ok {
		t.Error("a non-layer blob is capped")
	}
}

// A stream the count cannot decompress is refused, never passed: a
// corrupt gzip, a cut one, and a zstd stream whose window no decoder here
// takes.
func TestUndecodableIsRefused(t *testing.T) {
	raw := layerTar(t, make([]byte, 8<<20))
	full := gz(t, raw)
	// A frame header declaring a 1 GiB window (exponent 20), beyond what
	// containerd's decoder takes.
	big := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3}, bytes.Repeat([]byte{0}, 64)...)
	for _, tc := range []layerCase{
		{"junk-after-magic", append([]byte{0x1f, 0x8b, 0x08}, bytes.Repeat([]byte("junk"), 1<<16)...), ocispec.MediaTypeImageLayerGzip},
		{"cut-gzip", full[:len(full)/2], ocispec.MediaTypeImageLayerGzip},
		{"zstd-1GiB-window", big, ocispec.MediaTypeImageLayerZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := descOf(tc.mt, tc.blob)
			l := Limits{Ratio: 100000, Allowance: 1 << 40}
			if err := checked(t, l, desc, tc.blob); err == nil || !errdefs.IsInvalidArgument(err) || errors.Is(err, ErrBomb) {
				t.Errorf("Check: %v; want refused as undecodable", err)
			}
			if _, err := guarded(t, l, desc, tc.blob); err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("Guard: %v; want refused", err)
			}
		})
	}
}

// The stream's own error (a digest mismatch) wins over a decoder's.
func TestGuardStreamErrorFirst(t *testing.T) {
	junk := append([]byte{0x1f, 0x8b, 0x08}, bytes.Repeat([]byte("junk"), 1<<16)...)
	desc := descOf(ocispec.MediaTypeImageLayerGzip, junk)
	c, _ := Default().Cap(desc)
	mismatch := errors.New("digest mismatch")
	rc := c.Guard(io.NopCloser(io.MultiReader(bytes.NewReader(junk), errReader{mismatch})))
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, mismatch) {
		t.Fatalf("got %v, want the stream's own error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// The counter goroutine ends with the stream: at EOF, on Close mid-way,
// on Close before any read, and after a bomb.
func TestGuardNoLeak(t *testing.T) {
	blob := gz(t, layerTar(t, make([]byte, 32<<20)))
	desc := descOf(ocispec.MediaTypeImageLayerGzip, blob)
	before := runtime.NumGoroutine()
	for _, l := range []Limits{{Ratio: 1000}, {Ratio: 2}} {
		c, _ := l.Cap(desc)
		for range 20 {
			rc := c.Guard(io.NopCloser(bytes.NewReader(blob)))
			io.Copy(io.Discard, rc)
			rc.Close()

			rc = c.Guard(io.NopCloser(bytes.NewReader(blob)))
			rc.Read(make([]byte, 100))
			rc.Close()

			rc = c.Guard(io.NopCloser(bytes.NewReader(blob)))
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

// A byte-at-a-time reader still gets the whole blob, and Read after the
// end keeps returning EOF.
func TestGuardSmallReads(t *testing.T) {
	blob := zst(t, layerTar(t, make([]byte, 1<<20)))
	desc := descOf(ocispec.MediaTypeImageLayerZstd, blob)
	c, _ := Limits{Ratio: 200, Allowance: 2 << 20}.Cap(desc)
	rc := c.Guard(io.NopCloser(bytes.NewReader(blob)))
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

func TestLimitsArithmetic(t *testing.T) {
	for _, tc := range []struct {
		l          Limits
		compressed int64
		want       int64
		ok         bool
	}{
		{Default(), 1 << 20, 1 << 30, true},
		{Default(), 10 << 20, 2000 << 20, true},
		{Limits{Ratio: 200}, math.MaxInt64 / 100, math.MaxInt64, true},
		{Limits{}, 1 << 20, math.MaxInt64, false},
		{Limits{MaxBytes: 5}, 1 << 20, 5, true},
		{Limits{Ratio: 200, Allowance: 1 << 30, MaxBytes: 1 << 40}, 1 << 20, 1 << 30, true},
	} {
		if got, ok := tc.l.max(tc.compressed); got != tc.want || ok != tc.ok {
			t.Errorf("%+v.max(%d) = %d, %v; want %d, %v", tc.l, tc.compressed, got, ok, tc.want, tc.ok)
		}
	}
	// Each error names its key, as the config files spell it.
	for l, key := range map[Limits]string{{Ratio: -1}: "max_layer_ratio", {MaxBytes: -1}: "max_layer_bytes", {Allowance: -1}: "layer_allowance"} {
		err := l.Validate()
		var se *setting.Error
		if !errdefs.IsInvalidArgument(err) || !errors.As(err, &se) || se.Key != key || !strings.HasPrefix(err.Error(), key+" -1: ") {
			t.Errorf("%+v: %v; want invalid, naming %s", l, err, key)
		}
	}
}

// A sparse entry declares far more than the layer holds: what the files
// declare counts against the cap, in every format the applier takes.
func TestSparseCounts(t *testing.T) {
	raw := testutil.SparseTar(t, "big", 3<<29) // 1.5 GiB of holes in ~2 KB
	for _, tc := range []layerCase{
		{"gzip", gz(t, raw), ocispec.MediaTypeImageLayerGzip},
		{"zstd", zst(t, raw), ocispec.MediaTypeImageLayerZstd},
		{"plain", raw, ocispec.MediaTypeImageLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := descOf(tc.mt, tc.blob)
			limit := Default().mustMax(t, desc.Size)
			wantBomb(t, checked(t, Default(), desc, tc.blob), desc, limit)
			_, err := guarded(t, Default(), desc, tc.blob)
			wantBomb(t, err, desc, limit)
			// Under a cap above the declared size it passes.
			if err := checked(t, Limits{MaxBytes: 4 << 30, Ratio: 1 << 30}, desc, tc.blob); err != nil {
				t.Errorf("under a 4 GiB cap: %v", err)
			}
		})
	}
	c, _ := Default().Cap(descOf(ocispec.MediaTypeImageLayer, raw))
	if err := c.Written(3 << 29); !errors.Is(err, ErrBomb) {
		t.Errorf("Written(1.5 GiB) = %v", err)
	}
}

func (l Limits) mustMax(t *testing.T, compressed int64) int64 {
	n, ok := l.max(compressed)
	if !ok {
		t.Fatalf("%+v: no cap", l)
	}
	return n
}
