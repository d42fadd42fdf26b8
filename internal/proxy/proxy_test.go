package proxy

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
)

// upstream is a real HTTP file server that counts the GETs it sees.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string]upFile
	gets  map[string]int
	// conditional counts GETs with a validator.
	conditional map[string]int
	// release ends the /slow handler's wait.
	release chan struct{}
}

type upFile struct {
	body  []byte
	ctype string
	// delay before the answer, to make concurrent requests overlap.
	delay time.Duration
	// noLength sends the body chunked, without a Content-Length.
	noLength bool
}

var upModTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{files: map[string]upFile{}, gets: map[string]int{}, conditional: map[string]int{},
		release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		close(u.release)
		u.Close()
	})
	return u
}

func (u *upstream) set(p string, f upFile) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[p] = f
}

func (u *upstream) count(p string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gets[p]
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.gets[r.URL.Path]++
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		u.conditional[r.URL.Path]++
	}
	f, ok := u.files[r.URL.Path]
	u.mu.Unlock()
	switch r.URL.Path {
	case "/cut":
		// Declares 1000 bytes, sends 10, and drops the connection.
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("0123456789"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "/slow":
		select {
		case <-u.release:
		case <-time.After(5 * time.Second):
		}
		w.Write([]byte("late"))
		return
	case "/boom":
		http.Error(w, "upstream broke", http.StatusInternalServerError)
		return
	case "/loop":
		http.Redirect(w, r, "/loop", http.StatusFound)
		return
	case "/echo-auth":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "auth=%q cookie=%q token=%q", r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("X-Token"))
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	time.Sleep(f.delay)
	if f.ctype != "" {
		w.Header().Set("Content-Type", f.ctype)
	}
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("Set-Cookie", "upstream=secret")
	if f.noLength {
		w.Write(f.body[:1])
		w.(http.Flusher).Flush()
		w.Write(f.body[1:])
		return
	}
	sum := sha256.Sum256(f.body)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	http.ServeContent(w, r, "", upModTime, bytes.NewReader(f.body))
}

// newPipeline is the real pipeline: the default engines (builtin, which
// detects EICAR) and a SQLite store.
func newPipeline(t testing.TB, engines []config.Engine) *pipeline.Pipeline {
	t.Helper()
	ctx := context.Background()
	set, err := build.Engines(ctx, engines, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := pipeline.New(pipeline.Config{Engines: set.List(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startProxy mounts a proxy for up on a test server.
func startProxy(t testing.TB, cfg Config) (*Proxy, *httptest.Server) {
	t.Helper()
	if cfg.Scanner == nil {
		cfg.Scanner = newPipeline(t, config.DefaultEngines())
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return p, srv
}

type answer struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func do(t testing.TB, method, url string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if method != http.MethodHead && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &a.json); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, url, b, err)
		}
	}
	return a
}

func get(t testing.TB, url string) answer { t.Helper(); return do(t, http.MethodGet, url, nil) }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cachedFiles lists the files in the cache's blobs folder.
func cachedFiles(t *testing.T, p *Proxy) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(p.cache.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func TestCleanFile(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("clean", 256<<10)
	up.set("/files/clean.bin", upFile{body: body, ctype: "application/x-test"})
	p, srv := startProxy(t, Config{Upstream: up.URL})
	url := srv.URL + "/files/clean.bin"

	first := get(t, url)
	if first.status != http.StatusOK || !bytes.Equal(first.body, body) {
		t.Fatalf("got %d with %d bytes, want 200 with the %d upstream bytes", first.status, len(first.body), len(body))
	}
	for k, want := range map[string]string{
		"Content-Type":      "application/x-test",
		"Content-Length":    strconv.Itoa(len(body)),
		"Last-Modified":     upModTime.Format(http.TimeFormat),
		"X-Lazaret-Verdict": "clean",
		"X-Lazaret-Sha256":  sha(body),
	} {
		if got := first.header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	if first.header.Get("Set-Cookie") != "" {
		t.Errorf("upstream's Set-Cookie was passed on")
	}
	etag := first.header.Get("Etag")
	if etag == "" || first.header.Get("X-Lazaret-Job") == "" {
		t.Fatalf("no ETag or job: %v", first.header)
	}

	second := get(t, url)
	if second.status != http.StatusOK || !bytes.Equal(second.body, body) {
		t.Fatalf("second: got %d with %d bytes", second.status, len(second.body))
	}
	if n := up.count("/files/clean.bin"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1 (the second request is served from the cache)", n)
	}

	t.Run("range", func(t *testing.T) {
		a := do(t, http.MethodGet, url, map[string]string{"Range": "bytes=1000-1999"})
		if a.status != http.StatusPartialContent || !bytes.Equal(a.body, body[1000:2000]) {
			t.Errorf("got %d with %d bytes, want 206 with bytes 1000-1999", a.status, len(a.body))
		}
		if got, want := a.header.Get("Content-Range"), fmt.Sprintf("bytes 1000-1999/%d", len(body)); got != want {
			t.Errorf("Content-Range: got %q, want %q", got, want)
		}
	})
	t.Run("head", func(t *testing.T) {
		a := do(t, http.MethodHead, url, nil)
		if a.status != http.StatusOK || len(a.body) != 0 || a.header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("got %d, %d body bytes, Content-Length %q", a.status, len(a.body), a.header.Get("Content-Length"))
		}
	})
	t.Run("if-none-match", func(t *testing.T) {
		a := do(t, http.MethodGet, url, map[string]string{"If-None-Match": etag})
		if a.status != http.StatusNotModified || len(a.body) != 0 {
			t.Errorf("got %d with %d bytes, want 304", a.status, len(a.body))
		}
	})
	t.Run("if-modified-since", func(t *testing.T) {
		a := do(t, http.MethodGet, url, map[string]string{"If-Modified-Since": upModTime.Format(http.TimeFormat)})
		if a.status != http.StatusNotModified {
			t.Errorf("got %d, want 304", a.status)
		}
	})
	if n := up.count("/files/clean.bin"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1", n)
	}
	// The blob is private to the proxy's user.
	for _, f := range cachedFiles(t, p) {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
}

func TestInfected(t *testing.T) {
	up := newUpstream(t)
	up.set("/files/eicar.com", upFile{body: testenv.EICAR, ctype: "application/octet-stream"})
	p, srv := startProxy(t, Config{Upstream: up.URL})

	for i := range 2 {
		a := get(t, srv.URL+"/files/eicar.com")
		if a.status != http.StatusConflict {
			t.Fatalf("request %d: got %d %s, want 409", i, a.status, a.body)
		}
		if bytes.Contains(a.body, testenv.EICAR) {
			t.Fatalf("request %d: the infected bytes were served", i)
		}
		for k, want := range map[string]any{"code": "infected", "signature": testenv.EICARSignature, "sha256": sha(testenv.EICAR)} {
			if a.json[k] != want {
				t.Errorf("request %d: %s: got %v, want %v", i, k, a.json[k], want)
			}
		}
		if id, _ := a.json["job"].(string); id == "" {
			t.Errorf("request %d: no job id in %s", i, a.body)
		}
	}
	if n := up.count("/files/eicar.com"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1 (the verdict is remembered)", n)
	}
	if files := cachedFiles(t, p); len(files) != 0 {
		t.Errorf("infected bytes kept in the cache: %v", files)
	}
	// HEAD is refused the same way.
	if a := do(t, http.MethodHead, srv.URL+"/files/eicar.com", nil); a.status != http.StatusConflict {
		t.Errorf("HEAD: got %d, want 409", a.status)
	}
}

func TestInfectedStatusConfigurable(t *testing.T) {
	up := newUpstream(t)
	up.set("/eicar", upFile{body: testenv.EICAR})
	_, srv := startProxy(t, Config{Upstream: up.URL, InfectedStatus: http.StatusForbidden})
	if a := get(t, srv.URL+"/eicar"); a.status != http.StatusForbidden || a.json["code"] != "infected" {
		t.Errorf("got %d %s, want 403 infected", a.status, a.body)
	}
}

// TestLargeInfectedRefused: a body over the pipeline's in-memory limit
// is scanned from the cache's own file, and an infected one is refused.
func TestLargeInfectedRefused(t *testing.T) {
	up := newUpstream(t)
	body := append(append([]byte{}, testenv.EICAR...), make([]byte, 3<<20)...)
	up.set("/big.exe", upFile{body: body})
	_, srv := startProxy(t, Config{Upstream: up.URL})
	if a := get(t, srv.URL+"/big.exe"); a.status != http.StatusConflict || a.json["code"] != "infected" {
		t.Errorf("got %d %s, want 409 infected", a.status, a.body)
	}
}

// TestConcurrent: 20 requests for one URL make one upstream fetch and one
// scan, and all get the same answer.
func TestConcurrent(t *testing.T) {
	up := newUpstream(t)
	clean := testenv.Deterministic("concurrent", 100<<10)
	up.set("/eicar.com", upFile{body: testenv.EICAR, delay: 100 * time.Millisecond})
	up.set("/clean.bin", upFile{body: clean, delay: 100 * time.Millisecond})
	_, srv := startProxy(t, Config{Upstream: up.URL})

	for _, tc := range []struct {
		path   string
		status int
		body   []byte
	}{
		{"/eicar.com", http.StatusConflict, nil},
		{"/clean.bin", http.StatusOK, clean},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var wg sync.WaitGroup
			answers := make([]answer, 20)
			for i := range answers {
				wg.Go(func() { answers[i] = get(t, srv.URL+tc.path) })
			}
			wg.Wait()
			for i, a := range answers {
				if a.status != tc.status {
					t.Errorf("request %d: got %d, want %d", i, a.status, tc.status)
				}
				if tc.body != nil && !bytes.Equal(a.body, tc.body) {
					t.Errorf("request %d: wrong bytes", i)
				}
				if tc.body == nil && a.json["job"] != answers[0].json["job"] {
					t.Errorf("request %d: job %v, want %v", i, a.json["job"], answers[0].json["job"])
				}
			}
			if n := up.count(tc.path); n != 1 {
				t.Errorf("upstream saw %d GETs, want 1", n)
			}
		})
	}
}

func TestUpstreamFailures(t *testing.T) {
	up := newUpstream(t)
	up.set("/big", upFile{body: testenv.Deterministic("big", 5000)})
	up.set("/big-chunked", upFile{body: testenv.Deterministic("big", 5000), noLength: true})
	p, srv := startProxy(t, Config{Upstream: up.URL, MaxSize: 4096, HeaderTimeout: 300 * time.Millisecond})

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more
	_, downSrv := startProxy(t, Config{Upstream: down.URL})

	for _, tc := range []struct {
		name, url, code string
		status          int
		upstreamStatus  float64
	}{
		{"down", downSrv.URL + "/x", "upstream_unreachable", http.StatusBadGateway, 0},
		{"not found", srv.URL + "/nothing-here", "not_found", http.StatusNotFound, 404},
		{"server error", srv.URL + "/boom", "upstream_error", http.StatusBadGateway, 500},
		{"cut off", srv.URL + "/cut", "upstream_truncated", http.StatusBadGateway, 0},
		{"slow", srv.URL + "/slow", "upstream_timeout", http.StatusGatewayTimeout, 0},
		{"too large, declared", srv.URL + "/big", "too_large", http.StatusBadGateway, 0},
		{"too large, chunked", srv.URL + "/big-chunked", "too_large", http.StatusBadGateway, 0},
		{"redirect loop", srv.URL + "/loop", "upstream_error", http.StatusBadGateway, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, tc.url)
			if a.status != tc.status || a.json["code"] != tc.code {
				t.Fatalf("got %d %s, want %d with code %s", a.status, a.body, tc.status, tc.code)
			}
			if msg, _ := a.json["error"].(string); msg == "" {
				t.Errorf("no reason in %s", a.body)
			}
			if tc.upstreamStatus != 0 && a.json["upstream_status"] != tc.upstreamStatus {
				t.Errorf("upstream_status: got %v, want %v", a.json["upstream_status"], tc.upstreamStatus)
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("an error answer is cacheable downstream")
			}
		})
	}
	if files := cachedFiles(t, p); len(files) != 0 {
		t.Errorf("failed fetches left bytes in the cache: %v", files)
	}
	if tmp, _ := os.ReadDir(p.cache.tmp); len(tmp) != 0 {
		t.Errorf("failed fetches left temporary files: %d", len(tmp))
	}
	for _, u := range []string{"/cut", "/big", "/big-chunked"} {
		if _, ok := p.cache.get(up.URL + u); ok {
			t.Errorf("%s: an index entry was kept", u)
		}
	}
}

func TestRequestRules(t *testing.T) {
	up := newUpstream(t)
	up.set("/a/b.txt", upFile{body: []byte("hello"), ctype: "text/plain"})
	up.set("/secret", upFile{body: []byte("outside")})
	_, srv := startProxy(t, Config{Upstream: up.URL + "/a/"})

	if a := do(t, http.MethodPost, srv.URL+"/b.txt", nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: got %d Allow %q, want 405", a.status, a.header.Get("Allow"))
	}
	if a := get(t, srv.URL+"/b.txt"); a.status != http.StatusOK || string(a.body) != "hello" {
		t.Errorf("GET under the base path: got %d %q", a.status, a.body)
	}
	for _, p := range []string{"/../secret", "/x/../../secret", "/%2e%2e/secret"} {
		if a := get(t, srv.URL+p); a.status != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", p, a.status)
		}
	}
	if n := up.count("/secret"); n != 0 {
		t.Errorf("a path escaped the upstream base: /secret fetched %d times", n)
	}
}

func TestCredentials(t *testing.T) {
	up := newUpstream(t)
	_, open := startProxy(t, Config{Upstream: up.URL})
	a := do(t, http.MethodGet, open.URL+"/echo-auth", map[string]string{"Authorization": "Bearer client", "Cookie": "c=1"})
	if string(a.body) != `auth="" cookie="" token=""` {
		t.Errorf("client credentials reached the upstream: %s", a.body)
	}
	u := strings.Replace(up.URL, "http://", "http://user:pw@", 1)
	_, withAuth := startProxy(t, Config{Upstream: u, Header: http.Header{"X-Token": {"t0k"}}})
	a = get(t, withAuth.URL+"/echo-auth")
	if string(a.body) != `auth="Basic dXNlcjpwdw==" cookie="" token="t0k"` {
		t.Errorf("configured credentials: got %s", a.body)
	}
}

// slowScanner is the real pipeline with a delay before each scan, and a
// signal when a scan starts.
type slowScanner struct {
	*pipeline.Pipeline
	delay   time.Duration
	release chan struct{} // if set, scans wait for it instead of delay
	started chan struct{}
	scans   atomic.Int32
}

func (s *slowScanner) Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error) {
	s.scans.Add(1)
	if s.started != nil {
		select {
		case s.started <- struct{}{}:
		default:
		}
	}
	if s.release != nil {
		<-s.release
	} else {
		time.Sleep(s.delay)
	}
	return s.Pipeline.Scan(ctx, req)
}

func TestSlowScanAnswersRetryAfter(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("large", 4<<20)
	up.set("/large.bin", upFile{body: body})
	sc := &slowScanner{Pipeline: newPipeline(t, config.DefaultEngines()), delay: 400 * time.Millisecond}
	_, srv := startProxy(t, Config{Upstream: up.URL, Scanner: sc, Wait: 50 * time.Millisecond})

	a := get(t, srv.URL+"/large.bin")
	if a.status != http.StatusServiceUnavailable || a.json["code"] != "scanning" || a.header.Get("Retry-After") != "5" {
		t.Fatalf("got %d %s Retry-After %q, want 503 scanning with Retry-After 5", a.status, a.body, a.header.Get("Retry-After"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		a = get(t, srv.URL+"/large.bin")
	}
	if a.status != http.StatusOK || !bytes.Equal(a.body, body) {
		t.Fatalf("after the scan: got %d with %d bytes, want 200 with the file", a.status, len(a.body))
	}
	if n := up.count("/large.bin"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1", n)
	}
	if n := sc.scans.Load(); n != 1 {
		t.Errorf("got %d scans, want 1 (later requests use the verdict cache)", n)
	}
}

func TestClientDisconnectMidScan(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("disconnect", 64<<10)
	up.set("/f.bin", upFile{body: body})
	sc := &slowScanner{Pipeline: newPipeline(t, config.DefaultEngines()),
		release: make(chan struct{}), started: make(chan struct{}, 1)}
	p, srv := startProxy(t, Config{Upstream: up.URL, Scanner: sc})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/f.bin", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-sc.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the scan did not start")
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the request was answered before the scan ended")
	}
	close(sc.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if e, ok := p.cache.get(up.URL + "/f.bin"); ok && e.Verdict == scan.Clean {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scan did not finish after the client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	a := get(t, srv.URL+"/f.bin")
	if a.status != http.StatusOK || !bytes.Equal(a.body, body) {
		t.Fatalf("got %d with %d bytes", a.status, len(a.body))
	}
	if n := up.count("/f.bin"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1", n)
	}
	if n := sc.scans.Load(); n != 1 {
		t.Errorf("got %d scans, want 1", n)
	}
}

// clock is a settable time for MaxAge tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestRevalidation(t *testing.T) {
	up := newUpstream(t)
	v1 := testenv.Deterministic("v1", 10<<10)
	up.set("/pkg.bin", upFile{body: v1})
	clk := &clock{t: time.Now()}
	_, srv := startProxy(t, Config{Upstream: up.URL, MaxAge: time.Minute, Now: clk.now})

	if a := get(t, srv.URL+"/pkg.bin"); a.status != http.StatusOK {
		t.Fatalf("got %d", a.status)
	}
	clk.add(30 * time.Second)
	get(t, srv.URL+"/pkg.bin")
	if n := up.count("/pkg.bin"); n != 1 {
		t.Fatalf("within MaxAge: upstream saw %d GETs, want 1", n)
	}
	clk.add(time.Minute)
	if a := get(t, srv.URL+"/pkg.bin"); a.status != http.StatusOK || !bytes.Equal(a.body, v1) {
		t.Fatalf("after revalidation: got %d", a.status)
	}
	up.mu.Lock()
	gets, cond := up.gets["/pkg.bin"], up.conditional["/pkg.bin"]
	up.mu.Unlock()
	if gets != 2 || cond != 1 {
		t.Errorf("got %d GETs, %d conditional; want 2 and 1 (a revalidation)", gets, cond)
	}

	// The upstream's content changes: after MaxAge the new bytes are
	// fetched, scanned and served.
	v2 := testenv.Deterministic("v2", 12<<10)
	up.set("/pkg.bin", upFile{body: v2})
	clk.add(2 * time.Minute)
	if a := get(t, srv.URL+"/pkg.bin"); a.status != http.StatusOK || !bytes.Equal(a.body, v2) {
		t.Fatalf("after a change upstream: got %d with %d bytes, want the new %d", a.status, len(a.body), len(v2))
	}
	// And now it is infected: refused, though clean bytes are cached.
	up.set("/pkg.bin", upFile{body: testenv.EICAR})
	clk.add(2 * time.Minute)
	if a := get(t, srv.URL+"/pkg.bin"); a.status != http.StatusConflict {
		t.Fatalf("after an infected change upstream: got %d, want 409", a.status)
	}
}

// TestSignatureChange: a clean cached file becomes infected when the
// signatures change, without a new fetch: the verdict is re-checked under
// the new engine version before the bytes are served.
func TestSignatureChange(t *testing.T) {
	sigs := t.TempDir()
	up := newUpstream(t)
	body := testenv.Deterministic("soon-known", 2048)
	up.set("/tool.bin", upFile{body: body})
	pl := newPipeline(t, []config.Engine{{Name: "builtin", Type: config.TypeBuiltin, Signatures: sigs, ReloadInterval: -1}})
	_, srv := startProxy(t, Config{Upstream: up.URL, Scanner: pl})

	if a := get(t, srv.URL+"/tool.bin"); a.status != http.StatusOK {
		t.Fatalf("before: got %d, want 200", a.status)
	}
	md5 := md5hex(body)
	if err := os.WriteFile(filepath.Join(sigs, "new.hdb"), []byte(md5+":2048:Lazaret.Test.New\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pl.Engines()[0].(scan.Reloader).Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := get(t, srv.URL+"/tool.bin")
	if a.status != http.StatusConflict || a.json["signature"] != "Lazaret.Test.New.UNOFFICIAL" {
		t.Fatalf("after the signature update: got %d %s, want 409 naming the new signature", a.status, a.body)
	}
	if n := up.count("/tool.bin"); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1", n)
	}
}

// TestRestartKeepsCache: a new proxy on the same folder serves what the
// old one cached without asking the upstream.
func TestRestartKeepsCache(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("restart", 30<<10)
	up.set("/keep.bin", upFile{body: body, ctype: "application/zip"})
	up.set("/eicar", upFile{body: testenv.EICAR})
	dir := t.TempDir()
	pl := newPipeline(t, config.DefaultEngines())
	p1, srv1 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl})
	get(t, srv1.URL+"/keep.bin")
	get(t, srv1.URL+"/eicar")
	srv1.Close()
	p1.Close()

	_, srv2 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl})
	a := get(t, srv2.URL+"/keep.bin")
	if a.status != http.StatusOK || !bytes.Equal(a.body, body) || a.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("after restart: got %d %q with %d bytes", a.status, a.header.Get("Content-Type"), len(a.body))
	}
	if a := get(t, srv2.URL+"/eicar"); a.status != http.StatusConflict {
		t.Errorf("after restart: infected answered %d, want 409", a.status)
	}
	if n, m := up.count("/keep.bin"), up.count("/eicar"); n != 1 || m != 1 {
		t.Errorf("upstream saw %d and %d GETs, want 1 each", n, m)
	}
}

func TestPassThrough(t *testing.T) {
	up := newUpstream(t)
	page := []byte(`<html><body><a href="../../files/x.whl">x.whl</a></body></html>`)
	up.set("/simple/x/", upFile{body: page, ctype: "text/html; charset=utf-8"})
	up.set("/simple/eicar.txt", upFile{body: testenv.EICAR, ctype: "text/plain"})
	_, srv := startProxy(t, Config{Upstream: up.URL,
		PassThrough: []Rule{{PathPrefix: "/simple/", ContentTypes: []string{"text/html"}, Scan: false}}})

	a := get(t, srv.URL+"/simple/x/")
	if a.status != http.StatusOK || !bytes.Equal(a.body, page) || a.header.Get("X-Lazaret-Verdict") != "unscanned" {
		t.Errorf("index page: got %d %q verdict %q", a.status, a.body, a.header.Get("X-Lazaret-Verdict"))
	}
	// Under the prefix but not HTML: the rule does not apply.
	if a := get(t, srv.URL+"/simple/eicar.txt"); a.status != http.StatusConflict {
		t.Errorf("non-HTML under the prefix: got %d, want 409", a.status)
	}
}

func TestConfigErrors(t *testing.T) {
	pl := newPipeline(t, config.DefaultEngines())
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no upstream", Config{CacheDir: t.TempDir(), Scanner: pl}, "upstream: required"},
		{"bad scheme", Config{Upstream: "ftp://x", CacheDir: t.TempDir(), Scanner: pl}, "scheme"},
		{"no cache", Config{Upstream: "http://x", Scanner: pl}, "cache dir"},
		{"no scanner", Config{Upstream: "http://x", CacheDir: t.TempDir()}, "scanner"},
		{"bad status", Config{Upstream: "http://x", CacheDir: t.TempDir(), Scanner: pl, InfectedStatus: 200}, "infected status"},
		{"empty rule", Config{Upstream: "http://x", CacheDir: t.TempDir(), Scanner: pl, PassThrough: []Rule{{Scan: true}}}, "rule 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestCloseStopsFlights: Close ends a fetch still running in the
// background and returns; later requests are refused.
func TestCloseStopsFlights(t *testing.T) {
	up := newUpstream(t)
	p, srv := startProxy(t, Config{Upstream: up.URL, Wait: 20 * time.Millisecond})
	if a := get(t, srv.URL+"/slow"); a.status != http.StatusServiceUnavailable || a.json["code"] != "scanning" {
		t.Fatalf("got %d %s, want 503 scanning", a.status, a.body)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not end the running fetch")
	}
	if a := get(t, srv.URL+"/other"); a.status != http.StatusServiceUnavailable {
		t.Errorf("after Close: got %d, want 503", a.status)
	}
}

// TestNotCleanVerdicts: an engine that is down gives 503 with
// Retry-After, a sample over the pipeline's size limit 502; neither serves
// the bytes.
func TestNotCleanVerdicts(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("not-clean", 8<<10)
	up.set("/f.bin", upFile{body: body})

	down := newPipeline(t, []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: "tcp://127.0.0.1:1",
		ConnectTimeout: 200 * time.Millisecond}})
	_, srv := startProxy(t, Config{Upstream: up.URL, Scanner: down})
	a := get(t, srv.URL+"/f.bin")
	if a.status != http.StatusServiceUnavailable || a.json["code"] != "scan_error" || a.header.Get("Retry-After") == "" {
		t.Errorf("engine down: got %d %s Retry-After %q, want 503 scan_error with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
	}
	if bytes.Contains(a.body, body[:64]) {
		t.Errorf("engine down: the bytes were served")
	}

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "small.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set, err := build.Engines(context.Background(), config.DefaultEngines(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	small, err := pipeline.New(pipeline.Config{Engines: set.List(), Store: st, MaxSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	_, srv2 := startProxy(t, Config{Upstream: up.URL, Scanner: small})
	a = get(t, srv2.URL+"/f.bin")
	if a.status != http.StatusBadGateway || a.json["code"] != "not_scanned" || a.json["reason"] != "too_large" {
		t.Errorf("too large to scan: got %d %s, want 502 not_scanned too_large", a.status, a.body)
	}
}

// TestScanOutlivesFetchDeadlines: the upstream's time limits bound the
// fetch, not the scan that follows it.
func TestScanOutlivesFetchDeadlines(t *testing.T) {
	up := newUpstream(t)
	body := testenv.Deterministic("deadlines", 32<<10)
	up.set("/f.bin", upFile{body: body})
	sc := &slowScanner{Pipeline: newPipeline(t, config.DefaultEngines()), delay: 300 * time.Millisecond}
	_, srv := startProxy(t, Config{Upstream: up.URL, Scanner: sc, Timeout: 150 * time.Millisecond, IdleTimeout: 50 * time.Millisecond})
	if a := get(t, srv.URL+"/f.bin"); a.status != http.StatusOK || !bytes.Equal(a.body, body) {
		t.Errorf("got %d %s, want 200 with the file", a.status, a.body)
	}
}
