package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
)

// keptHeaders are the upstream response headers stored with a body and
// passed on. An allow-list: hop-by-hop headers (Connection, Keep-Alive,
// Transfer-Encoding, …), cookies and anything describing the upstream's
// connection rather than the content never reach a client.
var keptHeaders = []string{"Content-Type", "Etag", "Last-Modified", "Content-Disposition", "Cache-Control"}

var (
	errTooManyRedirects = errors.New("too many redirects")
	errIdle             = errors.New("upstream stalled while sending the body")
)

func (p *Proxy) newClient() *http.Client {
	tr := p.cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = p.cfg.HeaderTimeout
		// Upstream headers are kept in the cache's index (read back
		// with a 1 MiB limit); Go's default allows 10 MiB.
		t.MaxResponseHeaderBytes = 64 << 10
		tr = t
	}
	limit := max(p.cfg.MaxRedirects, 0)
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > limit {
				return fmt.Errorf("%w (limit %d)", errTooManyRedirects, limit)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to scheme %q", req.URL.Scheme)
			}
			if req.URL.Host != via[0].URL.Host {
				// Credentials are for the origin asked, not for a CDN
				// or whatever it redirects to.
				req.Header.Del("Authorization")
				for k := range p.cfg.Header {
					req.Header.Del(k)
				}
			}
			return nil
		},
	}
}

// resolve finds the answer for t: from the cache when its bytes are fresh,
// else from the upstream (conditionally when there are cached bytes), with
// the verdict decided by the scanner. It runs detached from any request.
func (p *Proxy) resolve(ctx context.Context, t target) outcome {
	if e, ok := p.cache.get(t.url); ok && p.fresh(e) {
		if e.Blob {
			if out, ok := p.confirm(ctx, t, e, true); ok {
				out.hit = true
				return out
			}
		} else if e.Verdict == scan.Infected {
			out := p.infected(e)
			out.hit = true
			return out
		}
	}
	return p.fetch(ctx, t, true)
}

// fresh reports whether e may be used without asking the upstream: within
// its max age, and for cached bytes, stored with the link rewriting now in
// use.
func (p *Proxy) fresh(e *entry) bool {
	if p.now().Sub(e.Validated) >= e.d.maxAge {
		return false
	}
	return !e.Blob || e.Rewrite == e.d.rewrite
}

// fetch gets t from the upstream, stores the body and has it scanned.
// With conditional, cached bytes are revalidated with the upstream's
// validators.
func (p *Proxy) fetch(parent context.Context, t target, conditional bool) outcome {
	old, hadOld := p.cache.get(t.url)
	// Bytes stored under other link rewriting are not what would be
	// stored now: a 304 must not keep them.
	conditional = conditional && hadOld && old.Blob && old.Rewrite == old.d.rewrite &&
		(old.Header["Etag"] != "" || old.Header["Last-Modified"] != "")

	// ctx bounds the upstream exchange only; the scan that follows runs
	// under parent, with the pipeline's own engine deadlines.
	ctx, cancel := context.WithTimeout(parent, p.cfg.Timeout)
	defer cancel()
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return failure(http.StatusBadRequest, "bad_path", "bad upstream URL")
	}
	o := t.origin
	for k, vs := range o.header {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if o.user != nil {
		pw, _ := o.user.Password()
		req.SetBasicAuth(o.user.Username(), pw)
	}
	req.Header.Set("User-Agent", "lazaret-proxy")
	if conditional {
		if v := old.Header["Etag"]; v != "" {
			req.Header.Set("If-None-Match", v)
		}
		if v := old.Header["Last-Modified"]; v != "" {
			req.Header.Set("If-Modified-Since", v)
		}
	}
	start := p.now()
	resp, err := p.client.Do(req)
	if err != nil {
		return p.upstreamFailure(ctx, t, err)
	}
	defer func() {
		// A little is drained so that the connection can be reused;
		// a large unread remainder is cheaper to drop with the connection.
		io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
	}()

	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		ne := *old
		ne.Validated = p.now()
		stored, err := p.cache.put(&ne)
		if err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "proxy cache write failed", slog.String("url", t.url), slog.String("error", err.Error()))
		}
		if !stored.Blob {
			return p.fetch(parent, t, false) // evicted meanwhile
		}
		if out, ok := p.confirm(parent, t, stored, true); ok {
			return out
		}
		// The cached bytes went missing: fetch them whole.
		return p.fetch(parent, t, false)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		p.cache.drop(t.url)
		out := failure(http.StatusNotFound, "not_found", "not found upstream")
		out.body["upstream_status"] = resp.StatusCode
		p.m.upstreamError(out.code())
		return out
	case resp.StatusCode >= 400:
		out := failure(http.StatusBadGateway, "upstream_error", fmt.Sprintf("the upstream answered %d", resp.StatusCode))
		out.body["upstream_status"] = resp.StatusCode
		p.logUpstream(ctx, t, out)
		return out
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNonAuthoritativeInfo:
		out := failure(http.StatusBadGateway, "upstream_error", fmt.Sprintf("unexpected upstream status %d", resp.StatusCode))
		out.body["upstream_status"] = resp.StatusCode
		p.logUpstream(ctx, t, out)
		return out
	}
	if resp.ContentLength > p.cfg.MaxSize {
		out := tooLarge(p.cfg.MaxSize)
		p.logUpstream(ctx, t, out)
		return out
	}

	// Time-outs on a body: a stall (no bytes for IdleTimeout) ends the
	// fetch; the whole fetch is bounded by Timeout.
	idle := time.AfterFunc(p.cfg.IdleTimeout, func() { cancelCause(errIdle) })
	defer idle.Stop()
	body := &trackReader{r: resp.Body, idle: idle, d: p.cfg.IdleTimeout}
	declared := resp.ContentLength
	if resp.Uncompressed {
		declared = -1 // the length was the compressed one
	}
	var transform func(io.Writer) io.WriteCloser
	rewrite := ""
	if p.rewriteID != "" && rewritable(mediaType(resp.Header.Get("Content-Type"))) {
		rewrite = p.rewriteID
		transform = func(w io.Writer) io.WriteCloser { return newLinkRewriter(w, p.links, t.path) }
	}
	b, n, err := p.cache.write(body, p.cfg.MaxSize, declared, transform)
	idle.Stop() // the body is read: a long scan is no stall
	if err != nil {
		var out outcome
		switch {
		case errors.Is(err, errTooLarge):
			out = tooLarge(p.cfg.MaxSize)
		case errors.Is(err, errTruncated) || errors.Is(body.err, io.ErrUnexpectedEOF):
			out = failure(http.StatusBadGateway, "upstream_truncated", "the upstream's body was cut off")
		case body.err != nil:
			return p.upstreamFailure(ctx, t, body.err)
		default:
			p.log.LogAttrs(ctx, slog.LevelError, "proxy cache write failed", slog.String("url", t.url), slog.String("error", err.Error()))
			out = failure(http.StatusServiceUnavailable, "cache_error", "the proxy could not store the body")
			out.retryAfter = "30"
		}
		p.logUpstream(ctx, t, out)
		return out
	}
	defer p.cache.unpin(b)
	sum := b.sum
	now := p.now()
	e := &entry{URL: t.url, Path: t.path, SHA256: sum, Size: n, Header: keep(resp), Blob: true, Rewrite: rewrite,
		Validated: now}
	p.log.LogAttrs(ctx, slog.LevelInfo, "proxy fetched", slog.String("url", t.url), slog.String("sha256", sum),
		slog.Int64("size", n), slog.Bool("rewritten", rewrite != ""), slog.Duration("duration", now.Sub(start)))
	e, err = p.cache.put(e)
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "proxy cache write failed", slog.String("url", t.url), slog.String("error", err.Error()))
	}
	// New bytes are a new intake: they get a job of their own, even when
	// the pipeline answers it from its verdict cache.
	if out, ok := p.confirm(parent, t, e, false); ok {
		return out
	}
	out := failure(http.StatusServiceUnavailable, "cache_error", "the stored body could not be read back")
	out.retryAfter = "5"
	return out
}

// keep returns the upstream headers that are passed on.
func keep(resp *http.Response) map[string]string {
	h := map[string]string{}
	for _, k := range keptHeaders {
		if v := resp.Header.Get(k); v != "" {
			h[k] = v
		}
	}
	// The transport undid a gzip encoding the upstream chose: its ETag
	// named the encoded bytes, so it is at most a weak one for these.
	if resp.Uncompressed && h["Etag"] != "" && !strings.HasPrefix(h["Etag"], "W/") {
		h["Etag"] = "W/" + h["Etag"]
	}
	return h
}

// trackReader remembers the body's read error, to tell an upstream
// failure from a failure to write the cache, and feeds the idle watchdog.
type trackReader struct {
	r    io.Reader
	err  error
	idle *time.Timer
	d    time.Duration
}

func (t *trackReader) Read(b []byte) (int, error) {
	t.idle.Reset(t.d)
	n, err := t.r.Read(b)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// upstreamFailure turns a transport error into an answer.
func (p *Proxy) upstreamFailure(ctx context.Context, t target, err error) outcome {
	var out outcome
	var ne net.Error
	switch {
	case p.ctx.Err() != nil:
		out = failure(http.StatusServiceUnavailable, "unavailable", "the proxy is shutting down")
		out.retryAfter = "5"
	case errors.Is(context.Cause(ctx), errIdle):
		out = failure(http.StatusGatewayTimeout, "upstream_timeout", errIdle.Error())
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		out = failure(http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time")
	case errors.Is(err, errTooManyRedirects):
		out = failure(http.StatusBadGateway, "upstream_error", "the upstream redirected too many times")
	case errors.Is(err, syscall.ECONNREFUSED) || isDNS(err):
		out = failure(http.StatusBadGateway, "upstream_unreachable", "the upstream cannot be reached")
	case errors.Is(err, io.ErrUnexpectedEOF):
		out = failure(http.StatusBadGateway, "upstream_truncated", "the upstream's body was cut off")
	default:
		out = failure(http.StatusBadGateway, "upstream_error", "the upstream request failed")
	}
	p.m.upstreamError(out.code())
	p.log.LogAttrs(ctx, slog.LevelWarn, "proxy upstream failed", slog.String("url", t.url),
		slog.String("code", out.code()), slog.String("error", err.Error()))
	return out
}

func isDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

func (p *Proxy) logUpstream(ctx context.Context, t target, out outcome) {
	p.m.upstreamError(out.code())
	p.log.LogAttrs(ctx, slog.LevelWarn, "proxy upstream failed", slog.String("url", t.url),
		slog.String("code", out.code()), slog.Any("upstream_status", out.body["upstream_status"]))
}

func tooLarge(limit int64) outcome {
	out := failure(http.StatusBadGateway, "too_large", fmt.Sprintf("the upstream's body is larger than the limit of %d bytes", limit))
	out.body["limit"] = limit
	return out
}

// confirm decides whether the cached bytes of e may be served, with the
// verdict under the engines' current versions: from the scanner's cache
// (lookup, when allowed and the scanner can) or by scanning the bytes. An
// outcome that serves the bytes holds them in use (outcome.blob). It
// returns false when the bytes are missing or are not what e says; the
// caller then fetches them again.
func (p *Proxy) confirm(ctx context.Context, t target, e *entry, lookup bool) (outcome, bool) {
	b, err := p.cache.acquire(e.SHA256)
	if err != nil {
		return outcome{}, false
	}
	if e.d.passThrough {
		return outcome{serve: e, blob: b}, true
	}
	if lookup {
		if job, ok := p.lookup(ctx, e.SHA256); ok {
			return p.hold(p.settle(ctx, e, job), b), true
		}
	}
	name := path.Base(e.Path)
	if name == "/" || name == "." {
		name = "index"
	}
	body, err := p.cache.reader(b)
	if err != nil {
		p.cache.release(b)
		p.cache.discard(e.SHA256)
		return outcome{}, false
	}
	req := pipeline.Request{Name: name, Body: body, Size: b.size, Source: scan.Source{Kind: "proxy", URL: t.url}}
	if f, ok := body.(*os.File); ok {
		// A body in use never changes (bodies are stored by content and
		// not removed while held): the pipeline reads the file in place
		// rather than spooling a second copy.
		req.Body, req.Path = nil, f.Name()
	}
	job, err := p.cfg.Scanner.Scan(ctx, req)
	body.Close()
	if job == nil {
		p.cache.release(b)
		if err == nil {
			err = errors.New("no job")
		}
		p.log.LogAttrs(ctx, slog.LevelError, "proxy scan failed", slog.String("url", t.url), slog.String("error", err.Error()))
		out := failure(http.StatusServiceUnavailable, "scan_error", "the scan could not be run")
		out.retryAfter = "10"
		return out, true
	}
	if err != nil {
		// The verdict stands; only its record is missing.
		p.log.LogAttrs(ctx, slog.LevelWarn, "proxy scan not stored", slog.String("url", t.url),
			slog.String("job", job.ID), slog.String("error", err.Error()))
	}
	if job.SHA256 != "" && job.SHA256 != e.SHA256 {
		// The file changed under us: it is not what was fetched.
		p.log.LogAttrs(ctx, slog.LevelError, "proxy cached body corrupt", slog.String("url", t.url),
			slog.String("want_sha256", e.SHA256), slog.String("got_sha256", job.SHA256))
		p.cache.release(b)
		p.cache.discard(e.SHA256)
		return outcome{}, false
	}
	return p.hold(p.settle(ctx, e, job), b), true
}

// hold keeps b in use for an outcome that serves it, and releases it
// otherwise.
func (p *Proxy) hold(out outcome, b *blob) outcome {
	if out.serve == nil {
		p.cache.release(b)
		return out
	}
	out.blob = b
	return out
}

// lookup asks the scanner's verdict cache, if it has one, for a definitive
// verdict on sum under the current engine versions.
func (p *Proxy) lookup(ctx context.Context, sum string) (*scan.Job, bool) {
	l, ok := p.cfg.Scanner.(Looker)
	if !ok {
		return nil, false
	}
	var key string
	if k, ok := p.cfg.Scanner.(Keyer); ok {
		if key, _ = k.EnginesKey(ctx); key != "" {
			if c, ok := p.confirmed.Load(sum); ok && c.(confirmation).key == key {
				return c.(confirmation).job, true
			}
		}
	}
	job, err := l.Lookup(ctx, sum)
	if err != nil || job == nil || (job.Verdict != scan.Clean && job.Verdict != scan.Infected) {
		return nil, false
	}
	if key != "" {
		// The same content under the same engine versions keeps its
		// verdict: remember it.
		p.confirmed.Store(sum, confirmation{key: key, job: job})
	}
	return job, true
}

// settle records job's verdict on e and returns the answer for it.
// Infected bytes are dropped from the cache.
func (p *Proxy) settle(ctx context.Context, e *entry, job *scan.Job) outcome {
	// A verdict confirmed from the scanner's cache names the job that
	// first decided it; the entry keeps naming the job that scanned these
	// bytes for this URL, which is also a record of that verdict.
	changed := e.Verdict != job.Verdict || (e.Job != job.ID && !job.Cached) || e.Job == ""
	infectedBlob := job.Verdict == scan.Infected && e.Blob
	if changed || infectedBlob {
		ne := *e
		if changed {
			ne.Verdict, ne.Signature, ne.Job = job.Verdict, job.FirstSignature(), job.ID
		}
		if infectedBlob {
			ne.Blob = false
		}
		stored, err := p.cache.put(&ne)
		if err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "proxy cache write failed", slog.String("url", e.URL), slog.String("error", err.Error()))
		}
		e = stored
	}
	switch job.Verdict {
	case scan.Clean:
		return outcome{serve: e}
	case scan.Infected:
		p.log.LogAttrs(ctx, slog.LevelInfo, "proxy refused infected", slog.String("url", e.URL),
			slog.String("sha256", e.SHA256), slog.String("signature", e.Signature), slog.String("job", e.Job))
		return p.infected(e)
	case scan.Skipped:
		// A property of the content under this configuration (too
		// large, encrypted): retrying will not help.
		out := failure(http.StatusBadGateway, "not_scanned", "the file could not be scanned: "+reasonText(job))
		addJob(&out, e, job)
		return out
	default: // scan.Error, and anything unknown: fail closed
		out := failure(http.StatusServiceUnavailable, "scan_error", "the scan failed: "+reasonText(job))
		out.retryAfter = "10"
		addJob(&out, e, job)
		return out
	}
}

func reasonText(job *scan.Job) string {
	if job.Reason != scan.ReasonNone {
		return string(job.Reason)
	}
	return "unknown"
}

func addJob(out *outcome, e *entry, job *scan.Job) {
	out.body["verdict"] = string(job.Verdict)
	out.body["reason"] = string(job.Reason)
	out.body["job"] = job.ID
	out.body["sha256"] = e.SHA256
}

// infected is the answer for infected content.
func (p *Proxy) infected(e *entry) outcome {
	msg := "the file is infected"
	if e.Signature != "" {
		msg += ": " + e.Signature
	}
	out := failure(p.cfg.InfectedStatus, "infected", msg)
	out.body["verdict"] = string(scan.Infected)
	out.body["signature"] = e.Signature
	out.body["job"] = e.Job
	out.body["sha256"] = e.SHA256
	return out
}
