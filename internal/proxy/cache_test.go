package proxy

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/testenv"
)

// putFiles puts n files of size bytes on up, /f0 … /f(n-1), and returns
// their bodies.
func putFiles(up *upstream, n, size int) [][]byte {
	var out [][]byte
	for i := range n {
		b := testenv.Deterministic(fmt.Sprintf("evict-%d", i), size)
		up.set(fmt.Sprintf("/f%d", i), upFile{body: b})
		out = append(out, b)
	}
	return out
}

// eventually waits up to five seconds for cond: a request's hold on its
// body ends just after the client has the answer.
func eventually(t *testing.T, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func checkCache(t *testing.T, p *Proxy) {
	t.Helper()
	if err := p.cache.check(); err != nil {
		t.Fatalf("cache inconsistent: %v", err)
	}
}

// TestEviction: with room for three files, fetching a fourth evicts the
// least recently used one — not the oldest fetched, when that one was
// served since — and an evicted file is fetched again, not served broken.
func TestEviction(t *testing.T) {
	const size = 10 << 10
	up := newUpstream(t)
	bodies := putFiles(up, 5, size)
	p, srv := startProxy(t, Config{Upstream: up.URL, CacheMaxSize: 3*size + size/2})
	fetch := func(i int) {
		t.Helper()
		a := get(t, fmt.Sprintf("%s/f%d", srv.URL, i))
		if a.status != http.StatusOK || !bytes.Equal(a.body, bodies[i]) {
			t.Fatalf("/f%d: got %d with %d bytes, want 200 with its %d", i, a.status, len(a.body), len(bodies[i]))
		}
		checkCache(t, p)
		if n, _ := p.cache.stats(); n > p.cfg.CacheMaxSize {
			t.Fatalf("after /f%d: %d bytes cached, over the bound of %d", i, n, p.cfg.CacheMaxSize)
		}
	}
	cached := func(i int) bool {
		e, ok := p.cache.get(fmt.Sprintf("%s/f%d", up.URL, i))
		return ok && e.Blob
	}
	fetch(0)
	fetch(1)
	fetch(2)
	fetch(0) // f0 is now the most recently used; f1 the least
	fetch(3)
	if !cached(0) || cached(1) || !cached(2) || !cached(3) {
		t.Fatalf("after f3: cached f0 %t f1 %t f2 %t f3 %t, want f1 evicted", cached(0), cached(1), cached(2), cached(3))
	}
	// The evicted file's entry keeps its verdict; its bytes are fetched
	// again when asked for.
	if e, _ := p.cache.get(up.URL + "/f1"); e.Verdict != "clean" {
		t.Errorf("evicted entry: verdict %q, want clean kept", e.Verdict)
	}
	fetch(1)
	if n := up.count("/f1"); n != 2 {
		t.Errorf("upstream saw %d GETs of the evicted file, want 2", n)
	}
	if n := up.count("/f0"); n != 1 {
		t.Errorf("upstream saw %d GETs of the kept file, want 1", n)
	}
	if _, n := p.cache.stats(); n != 3 {
		t.Errorf("%d files cached, want 3", n)
	}
	if got := len(cachedFiles(t, p)); got != 3 {
		t.Errorf("%d files in the cache folder, want 3", got)
	}
}

// TestEvictionSparesFilesInUse: a body being served is not evicted, even
// when it is the least recently used; once released, it is.
func TestEvictionSparesFilesInUse(t *testing.T) {
	const size = 8 << 10
	up := newUpstream(t)
	bodies := putFiles(up, 3, size)
	p, srv := startProxy(t, Config{Upstream: up.URL, CacheMaxSize: size + size/2}) // room for one
	cached := func(i int) bool {
		e, ok := p.cache.get(fmt.Sprintf("%s/f%d", up.URL, i))
		return ok && e.Blob
	}
	get(t, srv.URL+"/f0")
	e, _ := p.cache.get(up.URL + "/f0")
	b, err := p.cache.acquire(e.SHA256) // as a request serving it does
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if a := get(t, srv.URL+"/f1"); a.status != http.StatusOK || !bytes.Equal(a.body, bodies[1]) {
			t.Fatalf("/f1: got %d", a.status)
		}
		eventually(t, func() bool { return !cached(1) })
	}
	// f1 was served whole both times, but with f0 in use there was no
	// room to keep it.
	if !cached(0) || cached(1) || up.count("/f1") != 2 {
		t.Fatalf("f0 in use: cached f0 %t f1 %t, %d GETs of f1; want f0 kept, f1 fetched twice", cached(0), cached(1), up.count("/f1"))
	}
	r, err := p.cache.reader(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, bodies[0]) {
		t.Fatal("the body in use changed")
	}
	checkCache(t, p)
	p.cache.release(b)
	get(t, srv.URL+"/f2")
	if !eventually(t, func() bool { return !cached(0) }) || !cached(2) {
		t.Errorf("f0 released: cached f0 %t f2 %t, want f0 evicted for f2", cached(0), cached(2))
	}
	checkCache(t, p)
}

// TestBodyLargerThanTheCache: a body over the whole bound is still
// served, then evicted.
func TestBodyLargerThanTheCache(t *testing.T) {
	up := newUpstream(t)
	big := testenv.Deterministic("big", 100<<10)
	up.set("/big", upFile{body: big})
	p, srv := startProxy(t, Config{Upstream: up.URL, CacheMaxSize: 10 << 10})
	gone := func() bool { n, files := p.cache.stats(); return n == 0 && files == 0 }
	for i := range 2 {
		if a := get(t, srv.URL+"/big"); a.status != http.StatusOK || !bytes.Equal(a.body, big) {
			t.Fatalf("request %d: got %d with %d bytes", i, a.status, len(a.body))
		}
		eventually(t, gone)
	}
	if n := up.count("/big"); n != 2 {
		t.Errorf("upstream saw %d GETs, want 2 (not kept)", n)
	}
	if !gone() {
		n, files := p.cache.stats()
		t.Errorf("%d bytes in %d files left, want none", n, files)
	}
	checkCache(t, p)
}

// TestRestartWithSmallerBound: a cache reopened with a smaller bound is
// cut down to it at once.
func TestRestartWithSmallerBound(t *testing.T) {
	const size = 10 << 10
	up := newUpstream(t)
	bodies := putFiles(up, 4, size)
	dir := t.TempDir()
	pl := newPipeline(t, config.DefaultEngines())
	p1, srv1 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl, CacheMaxSize: -1})
	for i := range 4 {
		get(t, fmt.Sprintf("%s/f%d", srv1.URL, i))
	}
	srv1.Close()
	p1.Close()
	p2, srv2 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl, CacheMaxSize: 2 * size})
	if n, files := p2.cache.stats(); n > 2*size || files != 2 {
		t.Errorf("reopened: %d bytes in %d files, want 2 files within %d", n, files, 2*size)
	}
	checkCache(t, p2)
	// The most recently validated stayed.
	for i, want := range []bool{false, false, true, true} {
		if e, _ := p2.cache.get(fmt.Sprintf("%s/f%d", up.URL, i)); e.Blob != want {
			t.Errorf("f%d cached %t, want %t", i, e.Blob, want)
		}
	}
	for i := range 4 {
		if a := get(t, fmt.Sprintf("%s/f%d", srv2.URL, i)); a.status != http.StatusOK || !bytes.Equal(a.body, bodies[i]) {
			t.Errorf("/f%d: got %d", i, a.status)
		}
	}
}

// TestEvictionUnderLoad: many clients fetching more files than the cache
// holds always get the right bytes, and the index stays consistent.
func TestEvictionUnderLoad(t *testing.T) {
	const size = 4 << 10
	up := newUpstream(t)
	bodies := putFiles(up, 12, size)
	bodies = append(bodies, testenv.Deterministic("large-one", 200<<10)) // not kept open
	up.set("/f12", upFile{body: bodies[12]})
	p, srv := startProxy(t, Config{Upstream: up.URL, CacheMaxSize: 5 * size})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 40 {
				i := r.IntN(len(bodies))
				resp, err := http.Get(fmt.Sprintf("%s/f%d", srv.URL, i))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, bodies[i]) {
					errs <- fmt.Errorf("/f%d: got %d with %d bytes (%v), want 200 with its %d", i, resp.StatusCode, len(b), err, len(bodies[i]))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !eventually(t, func() bool { n, _ := p.cache.stats(); return n <= 5*size }) {
		n, _ := p.cache.stats()
		t.Errorf("%d bytes cached at rest, over the bound of %d", n, 5*size)
	}
	checkCache(t, p)
}

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestMetrics: the counters move with what the proxy does.
func TestMetrics(t *testing.T) {
	const size = 10 << 10
	up := newUpstream(t)
	putFiles(up, 3, size)
	up.set("/eicar", upFile{body: testenv.EICAR})
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, srv := startProxy(t, Config{Upstream: up.URL, Name: "pypi", Metrics: m, CacheMaxSize: 2 * size})
	for _, path := range []string{"/f0", "/f0", "/f1", "/f2", "/eicar", "/eicar", "/nothing", "/boom"} {
		get(t, srv.URL+path)
	}
	do(t, http.MethodPost, srv.URL+"/f0", nil)
	out := scrape(t, reg)
	for _, want := range []string{
		`lazaret_proxy_requests_total{code="200",proxy="pypi"} 4`,
		`lazaret_proxy_requests_total{code="409",proxy="pypi"} 2`,
		`lazaret_proxy_requests_total{code="404",proxy="pypi"} 1`,
		`lazaret_proxy_requests_total{code="502",proxy="pypi"} 1`,
		`lazaret_proxy_requests_total{code="405",proxy="pypi"} 1`,
		// f0 and eicar the second time; the rest went to the upstream.
		`lazaret_proxy_cache_requests_total{proxy="pypi",result="hit"} 2`,
		`lazaret_proxy_cache_requests_total{proxy="pypi",result="miss"} 6`,
		`lazaret_proxy_cache_bytes{proxy="pypi"} 20480`,
		`lazaret_proxy_cache_files{proxy="pypi"} 2`,
		`lazaret_proxy_cache_max_bytes{proxy="pypi"} 20480`,
		`lazaret_proxy_cache_evictions_total{proxy="pypi"} 1`,
		`lazaret_proxy_cache_evicted_bytes_total{proxy="pypi"} 10240`,
		`lazaret_proxy_upstream_errors_total{code="not_found",proxy="pypi"} 1`,
		`lazaret_proxy_upstream_errors_total{code="upstream_error",proxy="pypi"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", out)
	}
	// A second proxy shares the collectors under its own name.
	_, srv2 := startProxy(t, Config{Upstream: up.URL, Name: "other", Metrics: m})
	get(t, srv2.URL+"/f0")
	if out := scrape(t, reg); !strings.Contains(out, `lazaret_proxy_requests_total{code="200",proxy="other"} 1`+"\n") {
		t.Errorf("second proxy not counted:\n%s", out)
	}
}

// TestEvictionForgetsConfirmations: what the proxy remembers about a
// body's verdict goes with the body, so that memory does not grow with
// every file ever served.
func TestEvictionForgetsConfirmations(t *testing.T) {
	up := newUpstream(t)
	putFiles(up, 1, 1<<10)
	p, srv := startProxy(t, Config{Upstream: up.URL})
	if a := get(t, srv.URL+"/f0"); a.status != http.StatusOK {
		t.Fatalf("/f0: got %d", a.status)
	}
	e, ok := p.cache.get(up.URL + "/f0")
	if !ok {
		t.Fatal("/f0 not cached")
	}
	p.confirmed.Store(e.SHA256, confirmation{key: "k"})
	p.cache.discard(e.SHA256)
	if _, ok := p.confirmed.Load(e.SHA256); ok {
		t.Error("a discarded body's confirmation is still remembered")
	}
}

// stats reports the bodies' total size and count, for tests.
func (c *cache) stats() (size int64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.blobs)
}

// check verifies the index against the bodies, for tests: every entry
// with Blob names a cached body that lists it, and the sizes add up.
func (c *cache) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	for sum, b := range c.blobs {
		total += b.size
		if b.gone || b.sum != sum {
			return fmt.Errorf("body %s: gone or misfiled", sum)
		}
		if _, err := os.Stat(c.blobPath(sum)); err != nil {
			return fmt.Errorf("body %s: %w", sum, err)
		}
	}
	if total != c.size {
		return fmt.Errorf("size %d, bodies add up to %d", c.size, total)
	}
	for u, e := range c.entries {
		if !e.Blob {
			continue
		}
		b := c.blobs[e.SHA256]
		if b == nil || !slices.Contains(b.urls, u) {
			return fmt.Errorf("entry %s names body %s, which is not cached for it", u, e.SHA256)
		}
	}
	return nil
}

// newTestCache opens a cache in dir on its own, without a proxy: every
// entry is accepted as it is.
func newTestCache(t *testing.T, dir string, max int64) *cache {
	t.Helper()
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := openCache(dir, cacheOptions{max: max, derive: func(*entry) bool { return true },
		log: slog.New(slog.DiscardHandler), m: m.forProxy("test", max)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// storeBody stores body for url in c as a fetch does: written, its entry
// put, then unpinned (which evicts). Safe to call from goroutines.
func storeBody(t *testing.T, c *cache, url string, body []byte) (*entry, bool) {
	t.Helper()
	b, n, err := c.write(bytes.NewReader(body), 1<<20, int64(len(body)), nil)
	if err != nil {
		t.Errorf("write %s: %v", url, err)
		return nil, false
	}
	defer c.unpin(b)
	e, err := c.put(&entry{URL: url, SHA256: b.sum, Size: n, Blob: true, Verdict: "clean", Validated: time.Now()})
	if err != nil {
		t.Errorf("put %s: %v", url, err)
		return nil, false
	}
	return e, true
}

// checkIndexFiles verifies that the index files say what the in-memory
// index says: one file per entry, naming the same body or none.
func checkIndexFiles(t *testing.T, c *cache) {
	t.Helper()
	c.mu.Lock()
	entries := maps.Clone(c.entries)
	c.mu.Unlock()
	des, err := os.ReadDir(c.index)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != len(entries) {
		t.Errorf("%d index files for %d entries", len(des), len(entries))
	}
	for u, e := range entries {
		got, err := readEntry(c.indexPath(u))
		switch {
		case err != nil:
			t.Errorf("%s: %v", u, err)
		case got.Blob != e.Blob || got.SHA256 != e.SHA256:
			t.Errorf("%s: the file says body %t %.8s, memory says %t %.8s", u, got.Blob, got.SHA256, e.Blob, e.SHA256)
		}
	}
}

// TestEvictionWritesIndexOutsideTheLock: an eviction updates the index in
// memory under the cache's lock and writes the files after it, so that a
// slow disk holds up no request; a fetch storing new bytes for the same
// URL meanwhile is what the file says in the end, whichever write runs
// last.
func TestEvictionWritesIndexOutsideTheLock(t *testing.T) {
	const size = 1 << 10
	dir := t.TempDir()
	c := newTestCache(t, dir, size+size/2) // room for one body
	const ua, ub = "http://up/a", "http://up/b"
	a, _ := storeBody(t, c, ua, testenv.Deterministic("a", size))
	ha, err := c.acquire(a.SHA256) // served: not evicted for b
	if err != nil {
		t.Fatal(err)
	}
	// b is served too before its fetch settles: nothing can be evicted.
	bb, n, err := c.write(bytes.NewReader(testenv.Deterministic("b", size)), size, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.put(&entry{URL: ub, SHA256: bb.sum, Size: n, Blob: true}); err != nil {
		t.Fatal(err)
	}
	hb, err := c.acquire(bb.sum)
	if err != nil {
		t.Fatal(err)
	}
	c.unpin(bb)
	blobOf := func(u string) (string, bool) {
		e, _ := c.get(u)
		return e.SHA256, e.Blob
	}
	if _, ok := blobOf(ua); !ok {
		t.Fatal("a evicted while in use")
	}

	c.indexMu.Lock() // a disk that does not answer
	released := make(chan struct{})
	go func() {
		defer close(released)
		c.release(ha) // a is now the least recently used: evicted
	}()
	if !eventually(t, func() bool { _, ok := blobOf(ua); return !ok }) {
		t.Fatal("a not evicted")
	}
	// The lock is free while the eviction waits on the disk.
	c.release(hb)
	if hb, err = c.acquire(bb.sum); err != nil {
		t.Fatalf("acquire b during the eviction's write: %v", err)
	}
	c.release(hb)

	// A fetch of a stores new bytes while the eviction's write waits.
	a2 := testenv.Deterministic("a, changed upstream", size)
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		storeBody(t, c, ua, a2)
	}()
	if !eventually(t, func() bool { sum, ok := blobOf(ua); return ok && sum == sha(a2) }) {
		t.Fatal("the new bytes of a not stored")
	}
	c.indexMu.Unlock()
	<-released
	<-stored

	if sum, ok := blobOf(ua); !ok || sum != sha(a2) {
		t.Errorf("a: body %t %.8s, want the new bytes %.8s", ok, sum, sha(a2))
	}
	if _, ok := blobOf(ub); ok {
		t.Error("b kept, want it evicted for the new bytes of a")
	}
	if err := c.check(); err != nil {
		t.Errorf("cache inconsistent: %v", err)
	}
	checkIndexFiles(t, c)
	// A restart finds what memory had.
	c2 := newTestCache(t, dir, size+size/2)
	if e, ok := c2.get(ua); !ok || !e.Blob || e.SHA256 != sha(a2) {
		t.Errorf("reopened: a is %+v, want the new bytes", e)
	}
}

// TestLateIndexWriteKeepsTheNewerEntry: an eviction's index write that
// runs only after a fetch stored new bytes for the same URL (a slow disk,
// a descheduled goroutine) writes the fetch's entry, not the one the
// eviction made: flush writes what memory holds when it runs.
func TestLateIndexWriteKeepsTheNewerEntry(t *testing.T) {
	const size = 1 << 10
	dir := t.TempDir()
	c := newTestCache(t, dir, size+size/2)
	const ua = "http://up/a"
	storeBody(t, c, ua, testenv.Deterministic("a", size))
	c.mu.Lock()
	c.max = 1 // evict everything, as a fetch of something larger would
	changed := c.evictLocked(nil)
	c.max = size + size/2
	c.mu.Unlock()
	if !slices.Equal(changed, []string{ua}) {
		t.Fatalf("evicted %q, want a", changed)
	}
	a2 := testenv.Deterministic("a, changed upstream", size)
	storeBody(t, c, ua, a2)
	c.flushLogged(changed...) // the eviction's write, late
	got, err := readEntry(c.indexPath(ua))
	if err != nil || !got.Blob || got.SHA256 != sha(a2) {
		t.Fatalf("index file of a: %+v, %v; want the new bytes %.8s", got, err, sha(a2))
	}
	checkIndexFiles(t, c)
}

// TestIndexUnderChurn: fetches, evictions and reads of a few URLs at once
// leave the index files matching the in-memory index, and a reopened
// cache with what memory had. Run it with -race.
func TestIndexUnderChurn(t *testing.T) {
	const size = 2 << 10
	dir := t.TempDir()
	// Room for one body of three URLs: nearly every fetch evicts, often
	// the body of a URL another worker is fetching.
	c := newTestCache(t, dir, size+size/2)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range 150 {
				u := fmt.Sprintf("http://up/f%d", r.IntN(3))
				switch r.IntN(4) {
				case 0: // a reader
					if e, ok := c.get(u); ok && e.Blob {
						if b, err := c.acquire(e.SHA256); err == nil {
							c.release(b)
						}
					}
				case 1: // bytes that vanished
					if e, ok := c.get(u); ok && e.Blob && i%7 == 0 {
						c.discard(e.SHA256)
					}
				default: // a fetch, of the same bytes or changed ones
					storeBody(t, c, u, testenv.Deterministic(fmt.Sprintf("%s-%d", u, r.IntN(3)), size))
				}
			}
		})
	}
	wg.Wait()
	if err := c.check(); err != nil {
		t.Errorf("cache inconsistent: %v", err)
	}
	checkIndexFiles(t, c)
	c.mu.Lock()
	want := maps.Clone(c.entries)
	c.mu.Unlock()
	c2 := newTestCache(t, dir, size+size/2)
	for u, e := range want {
		if got, ok := c2.get(u); !ok || got.Blob != e.Blob || got.SHA256 != e.SHA256 {
			t.Errorf("reopened %s: got %+v, want body %t %.8s", u, got, e.Blob, e.SHA256)
		}
	}
}

// TestOpenTidiesTheFolder: opening a cache walks its bodies once, keeps
// those its entries name with the size they say, and removes the rest;
// an entry whose body is missing or damaged no longer claims it.
func TestOpenTidiesTheFolder(t *testing.T) {
	const size = 1 << 10
	dir := t.TempDir()
	c := newTestCache(t, dir, -1)
	a, _ := storeBody(t, c, "http://up/a", testenv.Deterministic("a", size))
	b, _ := storeBody(t, c, "http://up/b", testenv.Deterministic("b", size))
	gone, _ := storeBody(t, c, "http://up/gone", testenv.Deterministic("gone", size))
	stray := sha(testenv.Deterministic("stray", size))
	write := func(name string, n int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(c.blobPath(stray), size)                             // named by no entry
	write(filepath.Join(c.blobDir, "zz", a.SHA256), size)      // in the wrong folder
	write(filepath.Join(c.blobDir, "junk"), 3)                 // not a body
	write(c.blobPath(b.SHA256), size-1)                        // damaged
	write(filepath.Join(c.tmp, "fetch-1"), size)               // a fetch cut short
	if err := os.Remove(c.blobPath(gone.SHA256)); err != nil { // removed behind the cache's back
		t.Fatal(err)
	}

	c2 := newTestCache(t, dir, -1)
	for u, want := range map[string]bool{"http://up/a": true, "http://up/b": false, "http://up/gone": false} {
		if e, ok := c2.get(u); !ok || e.Blob != want {
			t.Errorf("%s: entry %t, body %t; want the entry, body %t", u, ok, e != nil && e.Blob, want)
		}
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(p, c.index) {
			files = append(files, p)
		}
		return nil
	})
	if want := []string{c.blobPath(a.SHA256)}; !slices.Equal(files, want) {
		t.Errorf("files left: %q, want %q", files, want)
	}
	if err := c2.check(); err != nil {
		t.Errorf("cache inconsistent: %v", err)
	}
}

// TestBodyRemovedBehindTheCache: a cached body whose file someone else
// removed is fetched again, not answered with an error for good: a small
// one (kept open) at once, a large one from the next request on.
func TestBodyRemovedBehindTheCache(t *testing.T) {
	up := newUpstream(t)
	small, large := testenv.Deterministic("small", 4<<10), testenv.Deterministic("large", smallBlob+1)
	up.set("/small", upFile{body: small})
	up.set("/large", upFile{body: large})
	p, srv := startProxy(t, Config{Upstream: up.URL})
	for _, tc := range []struct {
		name     string
		body     []byte
		failures int // answers 503 before the body is fetched again
	}{
		{"/small", small, 0},
		{"/large", large, 1},
	} {
		get(t, srv.URL+tc.name)
		// As if the kept-open file had been closed for others since.
		p.cache.mu.Lock()
		p.cache.closeLocked(p.cache.blobs[sha(tc.body)])
		p.cache.mu.Unlock()
		if err := os.Remove(p.cache.blobPath(sha(tc.body))); err != nil {
			t.Fatal(err)
		}
		for i := range tc.failures {
			if a := get(t, srv.URL+tc.name); a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
				t.Errorf("%s, request %d: got %d, want 503 with Retry-After", tc.name, i, a.status)
			}
		}
		if a := get(t, srv.URL+tc.name); a.status != http.StatusOK || !bytes.Equal(a.body, tc.body) {
			t.Errorf("%s: got %d with %d bytes, want 200 with its %d", tc.name, a.status, len(a.body), len(tc.body))
		}
		if n := up.count(tc.name); n != 2 {
			t.Errorf("%s: upstream saw %d GETs, want 2", tc.name, n)
		}
	}
	checkCache(t, p)
}
