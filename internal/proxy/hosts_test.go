package proxy

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/testenv"
)

// TestHostsAndRewriting: a JSON index on the upstream links to a second
// host with absolute URLs; through the proxy the links lead to the
// proxy, and what they name is fetched from that host, scanned and cached.
func TestHostsAndRewriting(t *testing.T) {
	up, files := newUpstream(t), newUpstream(t)
	clean := testenv.Deterministic("host-file", 20<<10)
	files.set("/p/clean.whl", upFile{body: clean, ctype: "application/octet-stream"})
	files.set("/p/bad.whl", upFile{body: testenv.EICAR, ctype: "application/octet-stream"})
	const jsonType = "application/vnd.pypi.simple.v1+json"
	page := `{"files":[{"url":"` + files.URL + `/p/clean.whl"},{"url":"` + files.URL + `/p/bad.whl"}],"index":"` + up.URL + `/simple/"}`
	up.set("/simple/pkg/", upFile{body: []byte(page), ctype: jsonType})
	cfg := Config{Upstream: up.URL, Hosts: []Host{{Prefix: "/files/", Upstream: files.URL}}, RewriteLinks: true,
		PassThrough: []Rule{{PathPrefix: "/simple/", Scan: false}}}
	p, srv := startProxy(t, cfg)

	a := get(t, srv.URL+"/simple/pkg/")
	want := `{"files":[{"url":"../../files/p/clean.whl"},{"url":"../../files/p/bad.whl"}],"index":"../../simple/"}`
	if a.status != http.StatusOK || string(a.body) != want {
		t.Fatalf("page: got %d %s, want 200 %s", a.status, a.body, want)
	}
	if got := a.header.Get("Content-Length"); got != strconv.Itoa(len(want)) {
		t.Errorf("Content-Length: got %s, want %d", got, len(want))
	}
	// The upstream's ETag named other bytes: the rewritten page has its own.
	if got, want := a.header.Get("Etag"), `"sha256:`+sha([]byte(want))+`"`; got != want {
		t.Errorf("ETag: got %s, want %s", got, want)
	}
	if got := a.header.Get("Content-Type"); got != jsonType {
		t.Errorf("Content-Type: got %q, want %q", got, jsonType)
	}

	// The links, resolved against the page as a client does, reach the
	// second host.
	pageURL, _ := url.Parse(srv.URL + "/simple/pkg/")
	link, _ := url.Parse("../../files/p/clean.whl")
	a = get(t, pageURL.ResolveReference(link).String())
	if a.status != http.StatusOK || !bytes.Equal(a.body, clean) || a.header.Get("X-Lazaret-Verdict") != "clean" {
		t.Fatalf("file: got %d with %d bytes, verdict %q", a.status, len(a.body), a.header.Get("X-Lazaret-Verdict"))
	}
	if a := get(t, srv.URL+"/files/p/bad.whl"); a.status != http.StatusConflict {
		t.Errorf("infected file on the host: got %d, want 409", a.status)
	}
	get(t, srv.URL+"/files/p/clean.whl")
	if n, m := files.count("/p/clean.whl"), up.count("/files/p/clean.whl"); n != 1 || m != 0 {
		t.Errorf("got %d GETs on the host and %d on the upstream, want 1 and 0", n, m)
	}
	if e, ok := p.cache.get(files.URL + "/p/clean.whl"); !ok || e.Path != "/files/p/clean.whl" {
		t.Errorf("cache entry for the host's file: %v %+v", ok, e)
	}

	// Another proxy on the same cache without rewriting does not serve
	// the rewritten page, fresh as it is: it fetches the page again.
	cfg.CacheDir = p.cfg.CacheDir
	srv.Close()
	p.Close()
	cfg.RewriteLinks = false
	_, srv2 := startProxy(t, cfg)
	a = get(t, srv2.URL+"/simple/pkg/")
	if a.status != http.StatusOK || string(a.body) != page {
		t.Errorf("without rewriting: got %d %s, want the upstream's page", a.status, a.body)
	}
	if n := up.count("/simple/pkg/"); n != 2 {
		t.Errorf("upstream saw %d GETs of the page, want 2", n)
	}
	// The host's file is still served from the cache.
	if a := get(t, srv2.URL+"/files/p/clean.whl"); a.status != http.StatusOK || files.count("/p/clean.whl") != 1 {
		t.Errorf("cached host file: got %d, %d GETs on the host", a.status, files.count("/p/clean.whl"))
	}
}

// TestRewrittenRevalidation: a rewritten page revalidated with a 304
// keeps being served rewritten.
func TestRewrittenRevalidation(t *testing.T) {
	up := newUpstream(t)
	up.set("/simple/x/", upFile{body: []byte(`<a href="` + up.URL + `/files/x.whl">x</a>`), ctype: "text/html"})
	clk := &clock{t: time.Now()}
	_, srv := startProxy(t, Config{Upstream: up.URL, RewriteLinks: true, MaxAge: time.Minute, Now: clk.now,
		PassThrough: []Rule{{PathPrefix: "/simple/"}}})
	want := `<a href="../../files/x.whl">x</a>`
	for i := range 3 {
		a := get(t, srv.URL+"/simple/x/")
		if a.status != http.StatusOK || string(a.body) != want {
			t.Fatalf("request %d: got %d %s, want %s", i, a.status, a.body, want)
		}
		clk.add(2 * time.Minute)
	}
	up.mu.Lock()
	gets, cond := up.gets["/simple/x/"], up.conditional["/simple/x/"]
	up.mu.Unlock()
	if gets != 3 || cond != 2 {
		t.Errorf("got %d GETs, %d conditional; want 3 and 2", gets, cond)
	}
}

// TestHostCredentials: each origin gets its own credentials, and the
// upstream's extra header goes to the upstream only.
func TestHostCredentials(t *testing.T) {
	up, host := newUpstream(t), newUpstream(t)
	withUser := strings.Replace(host.URL, "http://", "http://hu:hp@", 1)
	_, srv := startProxy(t, Config{Upstream: up.URL, Header: http.Header{"X-Token": {"t0k"}},
		Hosts: []Host{{Prefix: "/h/", Upstream: withUser}}})
	if a := get(t, srv.URL+"/echo-auth"); string(a.body) != `auth="" cookie="" token="t0k"` {
		t.Errorf("upstream: got %s", a.body)
	}
	if a := get(t, srv.URL+"/h/echo-auth"); string(a.body) != `auth="Basic aHU6aHA=" cookie="" token=""` {
		t.Errorf("host: got %s", a.body)
	}
}

func TestHostConfigErrors(t *testing.T) {
	pl := newPipeline(t, config.DefaultEngines())
	for _, tc := range []struct {
		name  string
		hosts []Host
		want  string
	}{
		{"no slashes", []Host{{Prefix: "files", Upstream: "http://f"}}, "prefix"},
		{"root", []Host{{Prefix: "/", Upstream: "http://f"}}, "prefix"},
		{"dot segment", []Host{{Prefix: "/a/../", Upstream: "http://f"}}, "prefix"},
		{"bad character", []Host{{Prefix: "/a b/", Upstream: "http://f"}}, "prefix"},
		{"overlap", []Host{{Prefix: "/a/", Upstream: "http://f"}, {Prefix: "/a/b/", Upstream: "http://g"}}, "overlaps"},
		{"same upstream", []Host{{Prefix: "/a/", Upstream: "http://up/"}}, "served already"},
		// Nested base URLs would give one upstream file two local
		// paths, and so one cache entry to two sets of rules.
		{"host under the upstream", []Host{{Prefix: "/m/", Upstream: "http://up/files/"}},
			"hosts[0]: upstream http://up/files lies under the upstream http://up:"},
		{"host under the upstream, host in capitals", []Host{{Prefix: "/m/", Upstream: "http://UP/files"}},
			"hosts[0]: upstream http://UP/files lies under the upstream http://up:"},
		{"host under a host", []Host{{Prefix: "/a/", Upstream: "http://f"}, {Prefix: "/b/", Upstream: "http://f/x/y"}},
			"hosts[1]: upstream http://f/x/y lies under the host at /a/, http://f:"},
		{"host over a host", []Host{{Prefix: "/a/", Upstream: "http://f/x"}, {Prefix: "/b/", Upstream: "http://f/"}},
			"hosts[1]: upstream http://f contains the host at /a/, http://f/x:"},
		{"bad upstream", []Host{{Prefix: "/a/", Upstream: "ftp://f"}}, "hosts[0]: upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Upstream: "http://up", CacheDir: t.TempDir(), Scanner: pl, Hosts: tc.hosts})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestHostsThatDoNotOverlap: base URLs side by side on one server, or on
// one host name under another scheme, name different files.
func TestHostsThatDoNotOverlap(t *testing.T) {
	pl := newPipeline(t, config.DefaultEngines())
	_, err := New(Config{Upstream: "http://up/simple", CacheDir: t.TempDir(), Scanner: pl, Hosts: []Host{
		{Prefix: "/a/", Upstream: "http://up/simplex"},
		{Prefix: "/b/", Upstream: "http://up/files"},
		{Prefix: "/c/", Upstream: "https://up/simple/files"},
	}})
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
}

// TestHostMovedSinceStored: an entry stored for a host's file under one
// prefix is not what a request under the host's new prefix gets after a
// restart: the rules of the old path (here: served unscanned) are not
// those of the new one, so the file is fetched and scanned again.
func TestHostMovedSinceStored(t *testing.T) {
	up, files := newUpstream(t), newUpstream(t)
	files.set("/eicar.txt", upFile{body: testenv.EICAR, ctype: "text/plain"})
	dir := t.TempDir()
	pl := newPipeline(t, config.DefaultEngines())
	rules := []Rule{{PathPrefix: "/files/", Scan: false}}
	p1, srv1 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl, PassThrough: rules,
		Hosts: []Host{{Prefix: "/files/", Upstream: files.URL}}})
	if a := get(t, srv1.URL+"/files/eicar.txt"); a.status != http.StatusOK || a.header.Get("X-Lazaret-Verdict") != "unscanned" {
		t.Fatalf("under the pass-through prefix: got %d %q, want 200 unscanned", a.status, a.header.Get("X-Lazaret-Verdict"))
	}
	srv1.Close()
	p1.Close()

	p2, srv2 := startProxy(t, Config{Upstream: up.URL, CacheDir: dir, Scanner: pl, PassThrough: rules,
		Hosts: []Host{{Prefix: "/pkgs/", Upstream: files.URL}}})
	if _, ok := p2.cache.get(files.URL + "/eicar.txt"); ok {
		t.Error("the entry stored under the old prefix was kept")
	}
	if a := get(t, srv2.URL+"/pkgs/eicar.txt"); a.status != http.StatusConflict {
		t.Errorf("under the new prefix: got %d %q, want 409", a.status, a.header.Get("X-Lazaret-Verdict"))
	}
	if n := files.count("/eicar.txt"); n != 2 {
		t.Errorf("the host saw %d GETs, want 2", n)
	}
}

func TestFromConfig(t *testing.T) {
	size := func(n config.ByteSize) *config.ByteSize { return &n }
	for _, tc := range []struct {
		in   *config.ByteSize
		want int64
	}{
		{nil, config.DefaultProxyCacheMaxSize},
		{size(0), -1},
		{size(5 << 20), 5 << 20},
	} {
		pc := config.Proxy{Name: "pypi", Upstream: "https://pypi.org/", PassThrough: []string{"/simple/"}, RewriteLinks: true,
			Hosts: []config.ProxyHost{{Prefix: "/files/", Upstream: "https://files.pythonhosted.org/"}}, CacheMaxSize: tc.in}
		c := FromConfig(pc)
		if c.CacheMaxSize != tc.want {
			t.Errorf("cache_max_size %v: got %d, want %d", tc.in, c.CacheMaxSize, tc.want)
		}
		if c.Name != "pypi" || !c.RewriteLinks || len(c.Hosts) != 1 || c.Hosts[0].Upstream != "https://files.pythonhosted.org/" ||
			len(c.PassThrough) != 1 || c.PassThrough[0].Scan {
			t.Errorf("got %+v", c)
		}
	}
}

// TestSmallAndLargeAnswersAgree: small bodies (served from a kept-open
// file) and large ones (ServeContent with sendfile) answer with the same
// headers, and both do HEAD, Range and conditional requests.
func TestSmallAndLargeAnswersAgree(t *testing.T) {
	up := newUpstream(t)
	small := testenv.Deterministic("small", 5000)
	large := testenv.Deterministic("large", smallBlob+1)
	up.set("/small.bin", upFile{body: small, ctype: "application/x-test"})
	up.set("/large.bin", upFile{body: large, ctype: "application/x-test"})
	_, srv := startProxy(t, Config{Upstream: up.URL})
	first := map[string]http.Header{}
	for name, body := range map[string][]byte{"/small.bin": small, "/large.bin": large} {
		get(t, srv.URL+name) // fetched and scanned
		a := get(t, srv.URL+name)
		if a.status != http.StatusOK || !bytes.Equal(a.body, body) {
			t.Fatalf("%s: got %d with %d bytes", name, a.status, len(a.body))
		}
		first[name] = a.header
		if a := do(t, http.MethodHead, srv.URL+name, nil); a.status != http.StatusOK || len(a.body) != 0 ||
			a.header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("%s HEAD: got %d, %d bytes, Content-Length %q", name, a.status, len(a.body), a.header.Get("Content-Length"))
		}
		if a := do(t, http.MethodGet, srv.URL+name, map[string]string{"Range": "bytes=10-19"}); a.status != http.StatusPartialContent ||
			!bytes.Equal(a.body, body[10:20]) {
			t.Errorf("%s Range: got %d with %q", name, a.status, a.body)
		}
		if a := do(t, http.MethodGet, srv.URL+name, map[string]string{"If-None-Match": a.header.Get("Etag")}); a.status != http.StatusNotModified {
			t.Errorf("%s If-None-Match: got %d, want 304", name, a.status)
		}
		if a := do(t, http.MethodGet, srv.URL+name, map[string]string{"If-Modified-Since": upModTime.Format(http.TimeFormat)}); a.status != http.StatusNotModified {
			t.Errorf("%s If-Modified-Since: got %d, want 304", name, a.status)
		}
	}
	for _, k := range []string{"Content-Type", "Last-Modified", "Accept-Ranges", "X-Lazaret-Verdict"} {
		if s, l := first["/small.bin"].Get(k), first["/large.bin"].Get(k); s != l || s == "" {
			t.Errorf("%s: small %q, large %q", k, s, l)
		}
	}
	for _, k := range []string{"Etag", "X-Lazaret-Job", "X-Lazaret-Sha256"} {
		if first["/small.bin"].Get(k) == "" || first["/large.bin"].Get(k) == "" {
			t.Errorf("%s missing: small %q, large %q", k, first["/small.bin"].Get(k), first["/large.bin"].Get(k))
		}
	}
}

// TestHostsWithClamd: with clamd as the engine, a file behind a rewritten
// link to a second host is scanned by clamd: the NDB sample (a custom
// signature) answers 409 naming it, a clean file is served, and the page
// itself, scanned as well (no pass-through rule), is clean.
func TestHostsWithClamd(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	up, files := newUpstream(t), newUpstream(t)
	clean := testenv.Deterministic("clamd-host-clean", 30<<10)
	files.set("/p/ndb.bin", upFile{body: testenv.NDBSample()})
	files.set("/p/clean.bin", upFile{body: clean})
	up.set("/simple/x/", upFile{ctype: "text/html", body: []byte(`<a href="` + files.URL + `/p/ndb.bin">a</a><a href="` + files.URL + `/p/clean.bin">b</a>`)})
	pl := newPipeline(t, []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: addr, Timeout: 30 * time.Second}})
	_, srv := startProxy(t, Config{Upstream: up.URL, Scanner: pl, RewriteLinks: true,
		Hosts: []Host{{Prefix: "/files/", Upstream: files.URL}}})

	a := get(t, srv.URL+"/simple/x/")
	if a.status != http.StatusOK || a.header.Get("X-Lazaret-Verdict") != "clean" ||
		string(a.body) != `<a href="../../files/p/ndb.bin">a</a><a href="../../files/p/clean.bin">b</a>` {
		t.Fatalf("page: got %d %q %s", a.status, a.header.Get("X-Lazaret-Verdict"), a.body)
	}
	if a := get(t, srv.URL+"/files/p/ndb.bin"); a.status != http.StatusConflict || a.json["signature"] != testenv.Unofficial(testenv.NDBSignature) {
		t.Errorf("NDB sample: got %d %s, want 409 naming %s", a.status, a.body, testenv.Unofficial(testenv.NDBSignature))
	}
	if a := get(t, srv.URL+"/files/p/clean.bin"); a.status != http.StatusOK || !bytes.Equal(a.body, clean) {
		t.Errorf("clean file: got %d with %d bytes", a.status, len(a.body))
	}
}
