// Package proxy is lazaret's store-scan-forward gate (`lazaret proxy`): a
// pull-through HTTP proxy in front of an upstream (a package index, a file
// server), and optionally of more upstreams that the first one's pages
// link to, that never hands a client a byte before the bytes were scanned.
//
// For every GET or HEAD it maps the request path onto an upstream, fetches
// the whole body into a cache folder (hashing while writing), runs the
// stored bytes through the one scan pipeline and only then answers: clean
// content with the bytes (Range, HEAD and conditional requests work),
// infected content with 409 and a JSON body naming the signature, anything
// else with a JSON error. Content is cached by URL and SHA-256 within a
// size bound (least recently used bodies go first); before cached bytes
// are served their verdict is confirmed under the engines' current
// versions, so a signature update takes effect on the next request.
//
// Index pages (HTML, JSON) can have their absolute links to the upstreams
// rewritten to lead through the proxy (Config.RewriteLinks), so that a
// client following them cannot fetch past the gate.
package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
)

// Scanner scans one sample. *pipeline.Pipeline satisfies it; the proxy has
// no scan path of its own.
type Scanner interface {
	Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error)
}

// Looker is an optional ability of a Scanner: the cached verdict for content
// under the engines' current versions, or an error when there is none.
// *pipeline.Pipeline has it. With it, serving cached bytes whose verdict is
// still current costs one cache lookup; without it, cached bytes are scanned
// again before every serve.
type Looker interface {
	Lookup(ctx context.Context, sha256 string) (*scan.Job, error)
}

// Keyer is implemented by scanners that can say which engine versions
// they run (*pipeline.Pipeline does): a verdict confirmed under the same
// versions needs no second lookup.
type Keyer interface {
	EnginesKey(ctx context.Context) (string, error)
}

var _ Scanner = (*pipeline.Pipeline)(nil)
var _ Looker = (*pipeline.Pipeline)(nil)

// Defaults for the zero values of Config.
const (
	DefaultMaxAge         = time.Hour
	DefaultWait           = 10 * time.Second
	DefaultMaxSize        = 1 << 30
	DefaultCacheMaxSize   = config.DefaultProxyCacheMaxSize
	DefaultTimeout        = 10 * time.Minute
	DefaultHeaderTimeout  = 30 * time.Second
	DefaultIdleTimeout    = time.Minute
	DefaultMaxRedirects   = 5
	DefaultInfectedStatus = http.StatusConflict
)

// Rule says how content matching it is treated: typically index pages
// (PEP 503 `/simple/` HTML) that must be proxied but need not be scanned.
// A rule matches when the request path starts with PathPrefix (if set) and
// the upstream's media type is one of ContentTypes (if set). The first
// matching rule wins; content no rule matches is scanned.
type Rule struct {
	// PathPrefix is a request path prefix, such as "/simple/".
	PathPrefix string
	// ContentTypes are media types without parameters ("text/html");
	// "type/*" matches a whole type.
	ContentTypes []string
	// Scan says whether matching content is scanned before it is served.
	Scan bool
	// MaxAge, if set, replaces Config.MaxAge for matching content (index
	// pages change more often than files).
	MaxAge time.Duration
}

// Host is one more upstream, served under its own path prefix: the host
// an index links its files to (pypi.org's pages link to
// files.pythonhosted.org).
type Host struct {
	// Prefix is the local path prefix, with a leading and a trailing
	// slash ("/files/"). Requests under it go to this host, not to the
	// upstream.
	Prefix string
	// Upstream is the base URL requests under Prefix are mapped onto:
	// /files/a/b fetches Upstream + "/a/b". Credentials in it are sent to
	// this host only, as basic auth.
	Upstream string
}

// Config configures a Proxy.
type Config struct {
	// Upstream is the base URL requests are mapped onto: a request for
	// /simple/x/ fetches Upstream + "/simple/x/". Credentials in it
	// (https://user:pass@host) are sent to the upstream as basic auth.
	Upstream string
	// Hosts are more upstreams by local path prefix.
	Hosts []Host
	// RewriteLinks rewrites, in HTML and JSON bodies, absolute links
	// (http, https or scheme-relative) under the base URL of the upstream
	// or of a host into relative links to the proxy's path for them. The
	// rewritten bytes are stored, scanned and served.
	RewriteLinks bool
	// CacheDir holds the cached bodies and the index; it is created.
	CacheDir string
	// CacheMaxSize bounds the total size of the cached bodies: past it
	// the least recently used are evicted (and fetched again when asked
	// for). 0 means DefaultCacheMaxSize, negative no bound.
	CacheMaxSize int64
	// Scanner scans every fetched body; required.
	Scanner Scanner
	// Header is added to every upstream request (an API token, say). It
	// is sent to Upstream only: not to Hosts, and not when a redirect
	// leaves the upstream's host. Clients' own credentials are never
	// forwarded: what one client fetches is cached and served to all.
	Header http.Header
	// MaxSize is the largest body fetched; 0 means DefaultMaxSize.
	MaxSize int64
	// MaxAge is how long cached content is served without asking the
	// upstream again; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Wait is how long a request waits for a fetch and scan before it is
	// answered 503 with Retry-After while the work goes on; 0 means
	// DefaultWait.
	Wait time.Duration
	// Timeout bounds one whole upstream fetch; 0 means DefaultTimeout.
	Timeout time.Duration
	// HeaderTimeout bounds the wait for the upstream's response headers;
	// 0 means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// IdleTimeout bounds a stall while reading the upstream's body; 0
	// means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxRedirects is how many redirects the upstream may answer in a
	// row; 0 means DefaultMaxRedirects, negative none.
	MaxRedirects int
	// InfectedStatus is the status for infected content; 0 means 409.
	InfectedStatus int
	// PassThrough rules, first match wins.
	PassThrough []Rule
	// Transport carries the upstream requests; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Name labels the proxy's metrics (label proxy).
	Name string
	// Metrics receives the proxy's counters; nil keeps them in
	// collectors no registry reads.
	Metrics *Metrics
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Proxy is the gate: an http.Handler. It is safe for concurrent use. Close
// stops the fetches and scans still running in the background.
type Proxy struct {
	cfg     Config
	origins []*origin // longest prefix first; the upstream ("/") last
	links   []linkRule
	// rewriteID names the link rewriting in use ("" for none); entries
	// stored under another are fetched again.
	rewriteID string
	log       *slog.Logger
	now       func() time.Time
	client    *http.Client
	cache     *cache
	m         *proxyMetrics
	ctx       context.Context // detached from every request; ended by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	mu        sync.Mutex // guards flights and their waiters
	flights   map[string]*flight
	closed    atomic.Bool
	// confirmed remembers, per content hash, the verdict the scanner's
	// cache confirmed and under which engine versions, so that serving
	// cached content again costs a version check, not a store read.
	confirmed sync.Map // sha256 -> confirmation
}

// origin is an upstream and the local path prefix it is served under.
type origin struct {
	prefix  string   // "/" for the upstream
	base    *url.URL // without credentials; path without a trailing slash
	baseStr string
	user    *url.Userinfo
	header  http.Header // sent to it (the upstream's Config.Header)
}

// describe names o and its base URL for errors.
func (o *origin) describe() string {
	if o.prefix == "/" {
		return "the upstream " + o.baseStr
	}
	return fmt.Sprintf("the host at %s, %s", o.prefix, o.baseStr)
}

// under reports whether base URL a lies under base URL b or is b: then
// every URL under a is under b too. Hosts compare without regard to case,
// as servers do.
func under(a, b *url.URL) bool {
	if a.Scheme != b.Scheme || !strings.EqualFold(a.Host, b.Host) {
		return false
	}
	return a.Path == b.Path || strings.HasPrefix(a.Path, b.Path+"/")
}

// confirmation is a verdict confirmed under a set of engine versions.
type confirmation struct {
	key string
	job *scan.Job
}

// parseBase checks an upstream base URL and splits off its credentials.
func parseBase(raw string) (*url.URL, *url.Userinfo, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, nil, errors.New("required")
	case err != nil:
		return nil, nil, err
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		return nil, nil, errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, nil, errors.New("must not have a query or fragment")
	}
	base := *u
	base.User = nil
	base.Path = strings.TrimSuffix(u.Path, "/")
	base.RawPath = ""
	return &base, u.User, nil
}

// validPrefix reports whether p is a usable local path prefix for a host:
// "/name/" or "/a/b/", of unreserved URL characters.
func validPrefix(p string) bool {
	if len(p) < 3 || p[0] != '/' || p[len(p)-1] != '/' {
		return false
	}
	for _, seg := range strings.Split(p[1:len(p)-1], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isUnreserved(c) {
				return false
			}
		}
	}
	return true
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// New validates cfg, opens the cache and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	base, user, err := parseBase(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream: %w", err)
	}
	origins := []*origin{{prefix: "/", base: base, baseStr: base.String(), user: user, header: cfg.Header}}
	for i, h := range cfg.Hosts {
		if !validPrefix(h.Prefix) {
			return nil, fmt.Errorf("proxy: hosts[%d]: prefix %q: want /name/ of letters, digits and -._~", i, h.Prefix)
		}
		b, u, err := parseBase(h.Upstream)
		if err != nil {
			return nil, fmt.Errorf("proxy: hosts[%d]: upstream: %w", i, err)
		}
		for _, o := range origins {
			// Cache entries are keyed by upstream URL, while what an entry
			// says about serving (pass-through rules, the depth its links
			// were rewritten for) comes from its local path: every
			// upstream URL must have one local path only. Nested base URLs
			// would give the files under the inner one two.
			switch {
			case o.prefix != "/" && (strings.HasPrefix(o.prefix, h.Prefix) || strings.HasPrefix(h.Prefix, o.prefix)):
				return nil, fmt.Errorf("proxy: hosts[%d]: prefix %q overlaps %q", i, h.Prefix, o.prefix)
			case under(b, o.base) && under(o.base, b):
				return nil, fmt.Errorf("proxy: hosts[%d]: upstream %s is served already, by %s", i, b, o.describe())
			case under(b, o.base):
				return nil, fmt.Errorf("proxy: hosts[%d]: upstream %s lies under %s: its files would have two local paths", i, b, o.describe())
			case under(o.base, b):
				return nil, fmt.Errorf("proxy: hosts[%d]: upstream %s contains %s: its files would have two local paths", i, b, o.describe())
			}
		}
		origins = append(origins, &origin{prefix: h.Prefix, base: b, baseStr: b.String(), user: u})
	}
	// Longest prefix first; "/" matches everything and comes last.
	slices.SortStableFunc(origins, func(a, b *origin) int { return len(b.prefix) - len(a.prefix) })
	if cfg.CacheDir == "" {
		return nil, errors.New("proxy: cache dir: required")
	}
	if cfg.Scanner == nil {
		return nil, errors.New("proxy: scanner: required")
	}
	if cfg.MaxSize < 0 || cfg.MaxAge < 0 || cfg.Wait < 0 || cfg.Timeout < 0 || cfg.HeaderTimeout < 0 || cfg.IdleTimeout < 0 {
		return nil, errors.New("proxy: sizes and durations must not be negative")
	}
	if cfg.InfectedStatus != 0 && (cfg.InfectedStatus < 400 || cfg.InfectedStatus > 599) {
		return nil, fmt.Errorf("proxy: infected status: %d is not a 4xx or 5xx status", cfg.InfectedStatus)
	}
	for i, r := range cfg.PassThrough {
		if r.PathPrefix == "" && len(r.ContentTypes) == 0 {
			return nil, fmt.Errorf("proxy: pass-through rule %d: needs a path prefix or content types", i)
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			return nil, fmt.Errorf("proxy: pass-through rule %d: path prefix %q must start with /", i, r.PathPrefix)
		}
		if r.MaxAge < 0 {
			return nil, fmt.Errorf("proxy: pass-through rule %d: max age must not be negative", i)
		}
	}
	setDefault(&cfg.MaxSize, DefaultMaxSize)
	setDefault(&cfg.CacheMaxSize, DefaultCacheMaxSize)
	setDefault(&cfg.MaxAge, DefaultMaxAge)
	setDefault(&cfg.Wait, DefaultWait)
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.HeaderTimeout, DefaultHeaderTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.MaxRedirects, DefaultMaxRedirects)
	setDefault(&cfg.InfectedStatus, DefaultInfectedStatus)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}

	p := &Proxy{cfg: cfg, origins: origins, log: cfg.Logger, now: cfg.Now, flights: map[string]*flight{},
		m: cfg.Metrics.forProxy(cfg.Name, cfg.CacheMaxSize)}
	if cfg.RewriteLinks {
		id := sha256.New()
		for _, o := range origins {
			r := linkRule{host: strings.ToLower(o.base.Host), path: o.base.Path + "/", prefix: o.prefix}
			p.links = append(p.links, r)
			fmt.Fprintf(id, "%s %s %s\n", r.host, r.path, r.prefix)
		}
		p.rewriteID = hex.EncodeToString(id.Sum(nil)[:8])
	}
	p.client = p.newClient()
	c, err := openCache(cfg.CacheDir, cacheOptions{max: cfg.CacheMaxSize, derive: p.derive,
		forget: func(sum string) { p.confirmed.Delete(sum) }, log: cfg.Logger, m: p.m})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p.cache = c
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Close ends the background fetches and scans, waits for them and closes
// the cache's kept-open files. Requests arriving after Close are answered
// 503.
func (p *Proxy) Close() error {
	p.closed.Store(true)
	p.cancel()
	p.wg.Wait()
	p.cache.close()
	return nil
}

// target is one request mapped onto an upstream.
type target struct {
	path   string // the cleaned local request path, for rules and names
	url    string // upstream URL without credentials: the cache key
	origin *origin
}

// errBadPath is answered 400.
var errBadPath = errors.New("path has a .. segment")

// target maps r onto an upstream. The path is cleaned so that it cannot
// reach outside the upstream's base path; a trailing slash is kept, since
// index pages (PEP 503) are addressed with one.
func (p *Proxy) target(r *http.Request) (target, error) {
	rp := r.URL.Path
	if rp == "" || rp[0] != '/' {
		rp = "/" + rp
	}
	clean := rp
	if !isClean(rp) {
		for _, seg := range strings.Split(rp, "/") {
			if seg == ".." {
				return target{}, errBadPath
			}
		}
		clean = path.Clean(rp)
		if strings.HasSuffix(rp, "/") && clean != "/" {
			clean += "/"
		}
	}
	u, o := p.upstreamURL(clean, r.URL.RawQuery)
	return target{path: clean, url: u, origin: o}, nil
}

// upstreamURL maps the cleaned local path clean and a raw query onto the
// upstream URL they fetch, and the origin it belongs to.
func (p *Proxy) upstreamURL(clean, rawQuery string) (string, *origin) {
	o := p.origins[len(p.origins)-1]
	for _, c := range p.origins {
		if strings.HasPrefix(clean, c.prefix) {
			o = c
			break
		}
	}
	rest := clean[len(o.prefix)-1:]
	if plainPath(rest) {
		// What url.URL.String would make of it, without its work.
		u := o.baseStr + rest
		if rawQuery != "" {
			u += "?" + rawQuery
		}
		return u, o
	}
	uu := *o.base
	uu.Path = o.base.Path + rest
	uu.RawQuery = rawQuery
	return uu.String(), o
}

// isClean reports whether path.Clean would leave p as it is, but for a
// trailing slash: no empty, "." or ".." segments.
func isClean(p string) bool {
	start := 1 // p[0] is '/'
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if (seg == "" && i < len(p)) || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// plainPath reports whether p needs no escaping in a URL path.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isUnreserved(c) {
			continue
		}
		switch c {
		case '/', '$', '&', '+', ',', ':', ';', '=', '@':
			continue
		}
		return false
	}
	return true
}

// ServeHTTP answers GET and HEAD; see the package documentation.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		p.writeJSON(w, http.StatusMethodNotAllowed, errBody("only GET and HEAD are proxied", "method_not_allowed"))
		return
	}
	t, err := p.target(r)
	if err != nil {
		p.writeJSON(w, http.StatusBadRequest, errBody("bad path: "+err.Error(), "bad_path"))
		return
	}
	if p.closed.Load() {
		w.Header().Set("Retry-After", "5")
		p.writeJSON(w, http.StatusServiceUnavailable, errBody("the proxy is shutting down", "unavailable"))
		return
	}
	if out, ok := p.fast(r.Context(), t); ok {
		p.m.hit.Inc()
		p.answer(w, r, out)
		p.free(out)
		return
	}
	f := p.join(t)
	defer p.leave(f)
	timer := time.NewTimer(p.cfg.Wait)
	defer timer.Stop()
	select {
	case <-f.done:
		if f.out.hit {
			p.m.hit.Inc()
		} else {
			p.m.miss.Inc()
		}
		p.answer(w, r, f.out)
	case <-timer.C:
		// The work goes on; a client that retries gets the result from
		// the cache. Clients that honour Retry-After (pip, curl --retry)
		// retry by themselves.
		p.m.miss.Inc()
		w.Header().Set("Retry-After", "5")
		p.writeJSON(w, http.StatusServiceUnavailable, errBody("the file is being fetched and scanned; retry shortly", "scanning"))
	case <-r.Context().Done():
		// The client left. The flight is not tied to its context, so the
		// fetch and scan finish and their result is cached.
	}
}

// flight is one fetch-and-scan of one URL that every concurrent request
// for it waits on. Its outcome's body stays in use until the flight is
// done and its last waiter has left.
type flight struct {
	done     chan struct{}
	out      outcome
	waiters  int  // guarded by Proxy.mu
	finished bool // guarded by Proxy.mu
}

// join returns the flight for t, starting one when none is running, and
// counts the caller as its waiter; the caller must leave it.
func (p *Proxy) join(t target) *flight {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.flights[t.url]; f != nil {
		f.waiters++
		return f
	}
	f := &flight{done: make(chan struct{}), waiters: 1}
	p.flights[t.url] = f
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				p.log.LogAttrs(p.ctx, slog.LevelError, "proxy flight panicked",
					slog.String("url", t.url), slog.String("panic", fmt.Sprint(v)))
				f.out = failure(http.StatusInternalServerError, "internal", "internal error")
			}
			p.mu.Lock()
			delete(p.flights, t.url)
			f.finished = true
			unused := f.waiters == 0
			p.mu.Unlock()
			close(f.done)
			if unused {
				p.free(f.out)
			}
		}()
		f.out = p.resolve(p.ctx, t)
	}()
	return f
}

// leave ends the caller's wait on f.
func (p *Proxy) leave(f *flight) {
	p.mu.Lock()
	f.waiters--
	last := f.waiters == 0 && f.finished
	p.mu.Unlock()
	if last {
		p.free(f.out)
	}
}

// free releases the body out holds.
func (p *Proxy) free(out outcome) {
	if out.blob != nil {
		p.cache.release(out.blob)
	}
}

// derived is what serving an entry needs, worked out once when the entry
// is stored rather than on every request.
type derived struct {
	// passThrough says a pass-through rule lets the content be served
	// unscanned. The zero value scans: an entry whose fields were never
	// worked out is never served unscanned.
	passThrough bool
	// maxAge is how long the content stays fresh.
	maxAge time.Duration
	// rewrite is the link rewriting bytes of this type must have gone
	// through (Proxy.rewriteID for HTML and JSON, else "").
	rewrite string
	mod     time.Time
	// header is set on every answer with the bytes.
	header []headerField
	// length and lastModified are the Content-Length and Last-Modified
	// values of a whole-body answer (lastModified nil when unknown).
	length, lastModified []string
}

// headerField is a canonical header name and its values, shared by every
// answer: never modified.
type headerField struct {
	key   string
	value []string
}

// derive fills e's derived fields. Entries stored before the local path
// was kept get it from their URL. False means e is not what a request for
// its path fetches under this configuration: its URL belongs to no
// upstream, or hosts and prefixes changed since it was stored, so that
// its path now leads elsewhere and the rules and link depth worked out
// from it would be another URL's.
func (p *Proxy) derive(e *entry) bool {
	_, query, _ := strings.Cut(e.URL, "?")
	if e.Path == "" {
		up := p.origins[len(p.origins)-1].baseStr
		rest, ok := strings.CutPrefix(e.URL, up)
		if !ok || !strings.HasPrefix(rest, "/") {
			return false
		}
		rest, _, _ = strings.Cut(rest, "?")
		if uu, err := url.PathUnescape(rest); err == nil {
			rest = uu
		}
		e.Path = rest
	}
	if u, _ := p.upstreamURL(e.Path, query); u != e.URL {
		return false
	}
	ct := e.contentType()
	mt := mediaType(ct)
	d := derived{maxAge: p.cfg.MaxAge}
	if r := p.rule(e.Path, mt); r != nil {
		d.passThrough = !r.Scan
		if r.MaxAge > 0 {
			d.maxAge = r.MaxAge
		}
	}
	if rewritable(mt) {
		d.rewrite = p.rewriteID
	}
	one := func(v string) []string { return []string{v} }
	if ct == "" {
		// Never let a client sniff: the type is the upstream's word.
		ct = "application/octet-stream"
	}
	d.header = append(d.header, headerField{"Content-Type", one(ct)})
	etag := e.Header["Etag"]
	if etag == "" || e.Rewrite != "" {
		// The content hash makes a strong validator of its own; the
		// upstream's names other bytes than rewritten ones.
		etag = `"sha256:` + e.SHA256 + `"`
	}
	d.header = append(d.header, headerField{"Etag", one(etag)})
	for _, k := range []string{"Content-Disposition", "Cache-Control"} {
		if v := e.Header[k]; v != "" {
			d.header = append(d.header, headerField{k, one(v)})
		}
	}
	if !d.passThrough {
		d.header = append(d.header, headerField{"X-Lazaret-Verdict", one(string(e.Verdict))},
			headerField{"X-Lazaret-Job", one(e.Job)})
	} else {
		d.header = append(d.header, headerField{"X-Lazaret-Verdict", one("unscanned")})
	}
	d.header = append(d.header, headerField{"X-Lazaret-Sha256", one(e.SHA256)})
	if v := e.Header["Last-Modified"]; v != "" {
		if t, err := http.ParseTime(v); err == nil && !t.IsZero() && !t.Equal(time.Unix(0, 0)) {
			d.mod = t
			d.lastModified = one(t.UTC().Format(http.TimeFormat))
		}
	}
	d.length = one(strconv.FormatInt(e.Size, 10))
	e.d = d
	return true
}

func (p *Proxy) rule(urlPath, mt string) *Rule {
	for i := range p.cfg.PassThrough {
		r := &p.cfg.PassThrough[i]
		if r.PathPrefix != "" && !strings.HasPrefix(urlPath, r.PathPrefix) {
			continue
		}
		if len(r.ContentTypes) > 0 && !matchType(r.ContentTypes, mt) {
			continue
		}
		return r
	}
	return nil
}

func matchType(types []string, mt string) bool {
	if mt == "" {
		return false
	}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == mt || (strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, t[:len(t)-1])) {
			return true
		}
	}
	return false
}
