package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sync"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/statuswriter"
)

// outcome is the answer to a request: bytes to serve, or a JSON error.
type outcome struct {
	serve *entry // serve its bytes
	// blob is serve's body, held in use until the answer is written.
	blob *blob
	// hit says the answer came from the cache, without the upstream.
	hit        bool
	status     int
	body       map[string]any
	retryAfter string
}

func (o outcome) code() string {
	c, _ := o.body["code"].(string)
	return c
}

func errBody(msg, code string) map[string]any {
	return map[string]any{"error": msg, "code": code}
}

func failure(status int, code, msg string) outcome {
	return outcome{status: status, body: errBody(msg, code)}
}

// fast answers from the cache without a flight when it can: fresh bytes
// that need no scan or whose verdict the scanner's cache confirms as
// clean under the current engine versions, or a remembered infection. This
// is the path of nearly every request for cached content: a map lookup, a
// version check and the body's kept-open file, no disk access before the
// bytes are read.
func (p *Proxy) fast(ctx context.Context, t target) (outcome, bool) {
	e, ok := p.cache.get(t.url)
	if !ok || !p.fresh(e) {
		return outcome{}, false
	}
	if !e.Blob {
		if e.Verdict == scan.Infected {
			return p.infected(e), true
		}
		return outcome{}, false
	}
	if !e.d.passThrough {
		job, ok := p.lookup(ctx, e.SHA256)
		if !ok {
			return outcome{}, false
		}
		out := p.settle(ctx, e, job)
		if out.serve == nil {
			return out, true
		}
		e = out.serve
	}
	b, err := p.cache.acquire(e.SHA256)
	if err != nil {
		return outcome{}, false // evicted or gone: fetch it again
	}
	return outcome{serve: e, blob: b}, true
}

// acceptRanges is shared by every answer: never modified.
var acceptRanges = []string{"bytes"}

// smallBufs holds buffers for reading small bodies whole.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBlob); return &b }}

// answer writes out to w.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, out outcome) {
	if out.serve == nil {
		if out.retryAfter != "" {
			w.Header().Set("Retry-After", out.retryAfter)
		}
		p.writeJSON(w, out.status, out.body)
		return
	}
	e, b := out.serve, out.blob
	h := w.Header()
	if b.f != nil && whole(r) {
		// A small body asked for whole: one read at an offset, one
		// write, none of ServeContent's seeks and header parsing.
		var body []byte
		if r.Method != http.MethodHead {
			bp := smallBufs.Get().(*[]byte)
			defer smallBufs.Put(bp)
			// ReadAt reports an error whenever it reads less.
			n, err := b.f.ReadAt((*bp)[:b.size], 0)
			if err != nil {
				p.log.Warn("proxy cached body unreadable", "sha256", e.SHA256, "error", err.Error())
				p.unreadable(w)
				return
			}
			body = (*bp)[:n]
		}
		for _, hf := range e.d.header {
			h[hf.key] = hf.value
		}
		h["Content-Length"] = e.d.length
		if e.d.lastModified != nil {
			h["Last-Modified"] = e.d.lastModified
		}
		h["Accept-Ranges"] = acceptRanges
		w.WriteHeader(http.StatusOK)
		p.m.answered(http.StatusOK)
		w.Write(body)
		return
	}
	f, err := p.cache.reader(b)
	if err != nil {
		p.log.Warn("proxy cached body unreadable", "sha256", e.SHA256, "error", err.Error())
		if errors.Is(err, fs.ErrNotExist) {
			// Removed behind the cache's back: forget it, so that the
			// next request fetches it again rather than failing too.
			p.cache.discard(e.SHA256)
		}
		p.unreadable(w)
		return
	}
	defer f.Close()
	for _, hf := range e.d.header {
		h[hf.key] = hf.value
	}
	// ServeContent does Range, HEAD, If-None-Match (against the ETag set
	// above), If-Modified-Since and Content-Length, and sends an
	// *os.File with sendfile.
	sw := statuswriter.New(w)
	http.ServeContent(sw, r, "", e.d.mod, f)
	p.m.answered(sw.Status())
}

// unreadable answers a cached body that could not be read.
func (p *Proxy) unreadable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	p.writeJSON(w, http.StatusServiceUnavailable, errBody("the cached file could not be read; retry", "cache_busy"))
}

// whole reports whether r asks for the whole body unconditionally.
func whole(r *http.Request) bool {
	h := r.Header
	return h["Range"] == nil && h["If-None-Match"] == nil && h["If-Modified-Since"] == nil &&
		h["If-Match"] == nil && h["If-Unmodified-Since"] == nil
}

func (p *Proxy) writeJSON(w http.ResponseWriter, status int, v any) {
	p.m.answered(status)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	// An answer that is not the file must not be cached downstream: the
	// next try may well succeed.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
