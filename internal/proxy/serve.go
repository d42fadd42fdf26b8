package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// outcome is the answer to a request: bytes to serve, or a JSON error.
type outcome struct {
	serve      *entry // serve its bytes
	unscanned  bool   // served by a pass-through rule without a scan
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
// is the path of nearly every request for cached content.
func (p *Proxy) fast(ctx context.Context, t target) (outcome, bool) {
	e, ok := p.cache.get(t.url)
	if !ok || !p.fresh(&e) {
		return outcome{}, false
	}
	if !e.Blob {
		if e.Verdict == scan.Infected {
			return p.infected(e), true
		}
		return outcome{}, false
	}
	if !p.mustScan(t.path, e.contentType()) {
		return outcome{serve: &e, unscanned: true}, true
	}
	job, ok := p.lookup(ctx, e.SHA256)
	if !ok {
		return outcome{}, false
	}
	return p.settle(ctx, e, job), true
}

// answer writes out to w.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, out outcome) {
	if out.serve == nil {
		if out.retryAfter != "" {
			w.Header().Set("Retry-After", out.retryAfter)
		}
		writeJSON(w, out.status, out.body)
		return
	}
	e := out.serve
	f, err := p.cache.open(e.SHA256)
	if err != nil {
		// Replaced or dropped between the decision and now.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errBody("the cached file changed; retry", "cache_busy"))
		return
	}
	defer f.Close()
	h := w.Header()
	ct := e.Header["Content-Type"]
	if ct == "" {
		// Never let ServeContent sniff: the type is the upstream's word.
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	etag := e.Header["Etag"]
	if etag == "" {
		// The content hash makes a strong validator of its own.
		etag = `"sha256:` + e.SHA256 + `"`
	}
	h.Set("Etag", etag)
	for _, k := range []string{"Content-Disposition", "Cache-Control"} {
		if v := e.Header[k]; v != "" {
			h.Set(k, v)
		}
	}
	if out.unscanned {
		h.Set("X-Lazaret-Verdict", "unscanned")
	} else {
		h.Set("X-Lazaret-Verdict", string(e.Verdict))
		h.Set("X-Lazaret-Job", e.Job)
	}
	h.Set("X-Lazaret-Sha256", e.SHA256)
	var mod time.Time
	if v := e.Header["Last-Modified"]; v != "" {
		if t, err := http.ParseTime(v); err == nil {
			mod = t
		}
	}
	// ServeContent does Range, HEAD, If-None-Match (against the ETag set
	// above), If-Modified-Since and Content-Length.
	http.ServeContent(w, r, "", mod, f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
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
