package testregistry

import (
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Request is one access-log entry: an HTTP request served by the registry.
type Request struct {
	Method string
	Path   string
	Status int
}

// Requests returns a snapshot of every HTTP request served so far.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.log...)
}

// BlobGets returns the digests of blobs successfully fetched with
// GET /v2/<name>/blobs/<digest>, in order.
func (r *Registry) BlobGets() []digest.Digest {
	var out []digest.Digest
	for _, req := range r.Requests() {
		if req.Method != http.MethodGet || req.Status < 200 || req.Status > 299 {
			continue
		}
		if d, ok := blobDigest(req.Path); ok {
			out = append(out, d)
		}
	}
	return out
}

// Reset clears the access log.
func (r *Registry) Reset() {
	r.mu.Lock()
	r.log = nil
	r.mu.Unlock()
}

// blobDigest extracts <digest> from /v2/<name>/blobs/<digest>.
func blobDigest(path string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "/blobs/")
	if i <= 0 {
		return "", false
	}
	d, err := digest.Parse(rest[i+len("/blobs/"):])
	return d, err == nil
}

func (r *Registry) record(req Request) {
	r.mu.Lock()
	r.log = append(r.log, req)
	r.mu.Unlock()
}

// accessLog wraps h, recording each request. The entry is recorded when the
// response status is committed, i.e. before the client can see any of the
// response, so a client that has read a response always finds it logged.
func (r *Registry) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rw := &statusWriter{ResponseWriter: w, rec: func(status int) {
			r.record(Request{Method: req.Method, Path: req.URL.Path, Status: status})
		}}
		h.ServeHTTP(rw, req)
		rw.commit(http.StatusOK) // handler wrote nothing: implicit 200
	})
}

type statusWriter struct {
	http.ResponseWriter
	rec  func(status int)
	done bool
}

func (w *statusWriter) commit(status int) {
	if !w.done {
		w.done = true
		w.rec(status)
	}
}

func (w *statusWriter) WriteHeader(status int) {
	if status >= 200 { // 1xx responses are informational, not final
		w.commit(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.commit(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.commit(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
