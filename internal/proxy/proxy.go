// Package proxy is lazaret's store-scan-forward gate (`lazaret proxy`): a
// pull-through HTTP proxy in front of one upstream (a package index, a file
// server) that never hands a client a byte before the bytes were scanned.
//
// For every GET or HEAD it maps the request path onto the upstream, fetches
// the whole body into a cache folder (hashing while writing), runs the stored
// bytes through the one scan pipeline and only then answers: clean content
// with the bytes (Range, HEAD and conditional requests work), infected
// content with 409 and a JSON body naming the signature, anything else with
// a JSON error. Content is cached by URL and SHA-256; before cached bytes are
// served their verdict is confirmed under the engines' current versions, so
// a signature update takes effect on the next request.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

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

// Config configures a Proxy.
type Config struct {
	// Upstream is the base URL requests are mapped onto: a request for
	// /simple/x/ fetches Upstream + "/simple/x/". Credentials in it
	// (https://user:pass@host) are sent to the upstream as basic auth.
	Upstream string
	// CacheDir holds the cached bodies and the index; it is created.
	CacheDir string
	// Scanner scans every fetched body; required.
	Scanner Scanner
	// Header is added to every upstream request (an API token, say). It
	// is not sent when a redirect leaves the upstream's host. Clients'
	// own credentials are never forwarded: what one client fetches is
	// cached and served to all.
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
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Proxy is the gate: an http.Handler. It is safe for concurrent use. Close
// stops the fetches and scans still running in the background.
type Proxy struct {
	cfg      Config
	base     *url.URL // Upstream without credentials
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	cache    *cache
	upHost   string
	user     *url.Userinfo   // upstream credentials, if any
	ctx      context.Context // detached from every request; ended by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex // guards flights
	flights  map[string]*flight
	closedMu sync.Mutex
	closed   bool
	// confirmed remembers, per content hash, the verdict the scanner's
	// cache confirmed and under which engine versions, so that serving
	// cached content again costs a version check, not a store read.
	confirmed sync.Map // sha256 -> confirmation
}

// confirmation is a verdict confirmed under a set of engine versions.
type confirmation struct {
	key string
	job *scan.Job
}

// New validates cfg, opens the cache and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Upstream)
	switch {
	case cfg.Upstream == "":
		return nil, errors.New("proxy: upstream: required")
	case err != nil:
		return nil, fmt.Errorf("proxy: upstream: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("proxy: upstream: scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		return nil, errors.New("proxy: upstream: no host")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("proxy: upstream: must not have a query or fragment")
	}
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

	c, err := openCache(cfg.CacheDir, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	base := *u
	base.User = nil
	base.Path = strings.TrimSuffix(u.Path, "/")
	base.RawPath = ""
	p := &Proxy{cfg: cfg, base: &base, log: cfg.Logger, now: cfg.Now, cache: c, upHost: u.Host,
		flights: map[string]*flight{}}
	p.client = p.newClient(u.User)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Close ends the background fetches and scans and waits for them. Requests
// arriving after Close are answered 503.
func (p *Proxy) Close() error {
	p.closedMu.Lock()
	p.closed = true
	p.closedMu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// target is one request mapped onto the upstream.
type target struct {
	path string // the cleaned request path, for rules and names
	url  string // upstream URL without credentials: the cache key
}

// errBadPath is answered 400.
var errBadPath = errors.New("path has a .. segment")

// target maps r onto the upstream. The path is cleaned so that it cannot
// reach outside the upstream's base path; a trailing slash is kept, since
// index pages (PEP 503) are addressed with one.
func (p *Proxy) target(r *http.Request) (target, error) {
	rp := r.URL.Path
	if rp == "" || rp[0] != '/' {
		rp = "/" + rp
	}
	for _, seg := range strings.Split(rp, "/") {
		if seg == ".." {
			return target{}, errBadPath
		}
	}
	clean := path.Clean(rp)
	if strings.HasSuffix(rp, "/") && clean != "/" {
		clean += "/"
	}
	u := *p.base
	u.Path = p.base.Path + clean
	u.RawQuery = r.URL.RawQuery
	return target{path: clean, url: u.String()}, nil
}

// ServeHTTP answers GET and HEAD; see the package documentation.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errBody("only GET and HEAD are proxied", "method_not_allowed"))
		return
	}
	t, err := p.target(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errBody("bad path: "+err.Error(), "bad_path"))
		return
	}
	p.closedMu.Lock()
	closed := p.closed
	p.closedMu.Unlock()
	if closed {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, errBody("the proxy is shutting down", "unavailable"))
		return
	}
	if out, ok := p.fast(r.Context(), t); ok {
		p.answer(w, r, out)
		return
	}
	f := p.join(t)
	timer := time.NewTimer(p.cfg.Wait)
	defer timer.Stop()
	select {
	case <-f.done:
		p.answer(w, r, f.out)
	case <-timer.C:
		// The work goes on; a client that retries gets the result from
		// the cache. Clients that honour Retry-After (pip, curl --retry)
		// retry by themselves.
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, errBody("the file is being fetched and scanned; retry shortly", "scanning"))
	case <-r.Context().Done():
		// The client left. The flight is not tied to its context, so the
		// fetch and scan finish and their result is cached.
	}
}

// flight is one fetch-and-scan of one URL that every concurrent request
// for it waits on.
type flight struct {
	done chan struct{}
	out  outcome
}

// join returns the flight for t, starting one when none is running.
func (p *Proxy) join(t target) *flight {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.flights[t.url]; f != nil {
		return f
	}
	f := &flight{done: make(chan struct{})}
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
			p.mu.Unlock()
			close(f.done)
		}()
		f.out = p.resolve(p.ctx, t)
	}()
	return f
}

// maxAge is how long content at path with media type ct stays fresh.
func (p *Proxy) maxAge(urlPath, ct string) time.Duration {
	if r := p.rule(urlPath, ct); r != nil && r.MaxAge > 0 {
		return r.MaxAge
	}
	return p.cfg.MaxAge
}

// mustScan reports whether content at path with media type ct is scanned
// before it is served.
func (p *Proxy) mustScan(urlPath, ct string) bool {
	if r := p.rule(urlPath, ct); r != nil {
		return r.Scan
	}
	return true
}

func (p *Proxy) rule(urlPath, ct string) *Rule {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = ""
	}
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
