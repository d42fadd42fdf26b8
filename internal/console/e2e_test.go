package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/lazaret/lazaret/internal/api"
	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/console"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
)

// chromiumPath is Debian's Chromium (package chromium).
const chromiumPath = "/usr/bin/chromium"

// envScreenshots, when set, names a directory that keeps the tests'
// screenshots; otherwise they go to a temporary directory.
const envScreenshots = "LAZARET_TEST_SCREENSHOTS"

// server is the real API with the console, in-process on 127.0.0.1.
type server struct {
	URL     string
	store   *sqlite.Store
	ids     *pipeline.Pipeline // makes job IDs
	reports *blob.Dir

	mu   sync.Mutex
	seen []string // request URIs, with "auth" when a bearer token came along
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// startServer starts api.New wired to a real pipeline with the builtin
// engine, a SQLite store and a folder of analyzer reports in a temporary
// directory.
func startServer(t *testing.T, tokens ...api.Token) *server {
	t.Helper()
	ctx := context.Background()
	engines, err := build.Engines(ctx, config.DefaultEngines(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engines.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := pipeline.New(pipeline.Config{Engines: engines.List(), Store: st, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	reports, err := blob.NewDir(filepath.Join(t.TempDir(), "reports"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Scanner: p, Jobs: st, Engines: engines, Tokens: tokens, Reports: reports, Console: console.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{store: st, ids: p, reports: reports}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := r.Method + " " + r.RequestURI
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			rec += " auth"
		}
		s.mu.Lock()
		s.seen = append(s.seen, rec)
		s.mu.Unlock()
		a.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// TestMountedInAPI checks the console behind the API's mux: it gets the
// GETs no API route takes, and needs no token when the API does.
func TestMountedInAPI(t *testing.T) {
	s := startServer(t, api.Token{Name: "reader", Role: api.RoleRead, Value: "reader-token-0123456789"})
	tests := []struct {
		method, path string
		status       int
		contentType  string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/assets/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/assets/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/nope", 404, "application/json"},
		{"GET", "/assets/nope.css", 404, "application/json"},
		{"GET", "/v1/nope", 404, "application/json"},
		{"GET", "/v1/engines", 401, "application/json"}, // the API still wants its token
		{"GET", "/healthz", 200, "application/json"},
		{"POST", "/", 404, "application/json"}, // the API's catch-all: the console is mounted for GET only
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, s.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
		})
	}
}

// page is one headless Chromium tab. Its helpers take the (sub)test that
// calls them, and fail it at the first error.
type page struct {
	ctx context.Context // with the test's deadline
	dir string          // screenshots

	mu       sync.Mutex
	problems []string // script exceptions and CSP violations
}

// newPage starts headless Chromium with the flags of INFRA.md and a fresh
// user data directory (chromedp makes one and removes it, and kills any
// child process still using it, when the browser stops). The browser is
// stopped at cleanup, and the test fails if the page threw an exception
// or broke its Content-Security-Policy.
func newPage(t *testing.T) *page {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Require(t, "Chromium ("+chromiumPath+", Debian package chromium)")
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	p := &page{}
	t.Cleanup(func() {
		// Close gracefully, then make sure: the allocator's cancel kills
		// what is left and waits for the process.
		closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		chromedp.Cancel(closeCtx)
		cancel()
		cancelCtx()
		cancelAlloc()
	})
	// The first call starts the browser; it must not carry a deadline.
	err := chromedp.Listen(ctx, func(ev any) {
		var problem string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			problem = fmt.Sprintf("exception: %s %s:%d", d.Text, d.URL, d.LineNumber)
			if d.Exception != nil && d.Exception.Description != "" {
				problem += ": " + d.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Source == cdplog.EntrySourceSecurity || ev.Entry.Source == cdplog.EntrySourceJavascript {
				problem = fmt.Sprintf("%s %s: %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text)
			}
		}
		if problem != "" {
			p.mu.Lock()
			p.problems = append(p.problems, problem)
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	t.Cleanup(cancel)
	p.ctx = tctx
	p.dir = os.Getenv(envScreenshots)
	if p.dir == "" {
		p.dir = t.TempDir()
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pr := range p.problems {
			t.Errorf("page: %s", pr)
		}
	})
	return p
}

// do runs steps, failing the test at the first error.
func (p *page) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](t *testing.T, p *page, expr string) T {
	t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy.
func (p *page) waitFor(t *testing.T, expr string) {
	t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`JSON.stringify({
			hash: location.hash,
			rows: document.querySelectorAll('#jobs tbody tr').length,
			lastRow: (document.querySelector('#jobs tbody tr:last-child') || {}).innerText,
			loadMore: [document.querySelector('#load-more').hidden, document.querySelector('#load-more').disabled],
			views: [...document.querySelectorAll('main > section')].filter((v) => !v.hidden).map((v) => v.id),
			status: document.querySelector('#status').innerText,
			upload: document.querySelector('#upload-result').innerText,
		})`))
		t.Fatalf("wait for %s: %v; the page shows %s", expr, err, state)
	}
}

// text returns the visible text of the first element matching the CSS
// selector, waiting for it to be visible.
func (p *page) text(t *testing.T, sel string) string {
	t.Helper()
	p.do(t, "wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (p *page) mustContain(t *testing.T, sel string, wants ...string) {
	t.Helper()
	got := p.text(t, sel)
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s shows %q, want it to contain %q", sel, got, w)
		}
	}
}

// upload scans a file through the page's upload form and waits for the
// verdict to show.
func (p *page) upload(t *testing.T, path, wantVerdict string) {
	t.Helper()
	p.do(t, "upload "+filepath.Base(path),
		chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{path}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
	)
	p.waitFor(t, fmt.Sprintf(`document.querySelector('#upload-result li[data-verdict=%q]')`, wantVerdict))
}

func (p *page) screenshot(t *testing.T, name string) {
	t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

func writeSample(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scanRaw scans b through the API directly, as a raw body.
func scanRaw(t *testing.T, base, name string, b []byte) {
	t.Helper()
	res, err := http.Post(base+"/v1/scan?name="+url.QueryEscape(name), "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/scan: status %d, want 200", res.StatusCode)
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestBrowserScan drives the console in headless Chromium against the real
// API: uploads EICAR and a clean file, reads the list, a job's details,
// the verdict filter, the SHA-256 search and the engines.
func TestBrowserScan(t *testing.T) {
	s := startServer(t)
	p := newPage(t) // stopped before the server: cleanups run last first
	eicar := writeSample(t, "eicar.com", testenv.EICAR)
	cleanBytes := []byte("hello, lazaret\n")
	clean := writeSample(t, "hello.txt", cleanBytes)
	// A file name is the attacker's: it must show as text, never as markup.
	const hostileName = `<img src=x onerror=window.pwned=1>evil.txt`
	hostile := writeSample(t, hostileName, []byte("harmless bytes"))

	p.do(t, "open the console",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#view-jobs")),
		chromedp.WaitVisible(chromedp.CSS("#jobs-empty")),
	)
	if got := eval[string](t, p, "document.title"); got != "Jobs — lazaret" {
		t.Errorf("title = %q, want %q", got, "Jobs — lazaret")
	}

	t.Run("upload EICAR", func(t *testing.T) {
		p.upload(t, eicar, "infected")
		p.mustContain(t, "#upload-result", "eicar.com", testenv.EICARSignature)
		p.waitFor(t, `document.querySelector('#jobs tbody tr[data-verdict="infected"]')`)
		p.mustContain(t, `#jobs tbody tr[data-verdict="infected"]`, "INFECTED", "eicar.com", testenv.EICARSignature, "68 B")
	})

	t.Run("upload clean", func(t *testing.T) {
		p.upload(t, clean, "clean")
		p.mustContain(t, `#upload-result li[data-verdict="clean"]`, "hello.txt")
		p.waitFor(t, `document.querySelectorAll('#jobs tbody tr').length === 2`)
		// Newest first.
		p.mustContain(t, `#jobs tbody tr:first-child`, "CLEAN", "hello.txt")
	})

	t.Run("hostile name shows as text", func(t *testing.T) {
		p.upload(t, hostile, "clean")
		p.waitFor(t, `document.querySelectorAll('#jobs tbody tr').length === 3`)
		p.mustContain(t, `#jobs tbody tr:first-child td.name`, hostileName)
		p.mustContain(t, `#upload-result`, hostileName)
		if n := eval[int](t, p, `document.querySelectorAll('main img').length`); n != 0 {
			t.Errorf("the page has %d img elements in main, want none (a file name became markup)", n)
		}
		if eval[bool](t, p, `window.pwned !== undefined`) {
			t.Error("a file name's script ran")
		}
	})

	p.screenshot(t, "jobs-light")
	p.do(t, "dark scheme", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return chromedp.Void{}, err
	})
	p.screenshot(t, "jobs-dark")

	t.Run("filter by verdict", func(t *testing.T) {
		eval[bool](t, p, `(() => { const s = document.querySelector('#verdict-filter'); s.value = 'infected'; s.dispatchEvent(new Event('change')); return true; })()`)
		p.waitFor(t, `location.hash === '#/?verdict=infected' && document.querySelectorAll('#jobs tbody tr').length === 1`)
		p.mustContain(t, `#jobs tbody tr`, "eicar.com")
		eval[bool](t, p, `(() => { const s = document.querySelector('#verdict-filter'); s.value = ''; s.dispatchEvent(new Event('change')); return true; })()`)
		p.waitFor(t, `location.hash === '#/' && document.querySelectorAll('#jobs tbody tr').length === 3`)
	})

	t.Run("search by SHA-256", func(t *testing.T) {
		p.do(t, "search for a bad hash",
			chromedp.SendKeys(chromedp.CSS("#search-sha256"), "abc123"),
			chromedp.Click(chromedp.CSS("#search-submit")),
		)
		p.mustContain(t, "#search-error", "64 hexadecimal digits")
		if got := eval[string](t, p, `document.querySelector('#search-sha256').getAttribute('aria-invalid')`); got != "true" {
			t.Errorf("aria-invalid = %q, want true", got)
		}
		for _, r := range s.requests() {
			if strings.Contains(r, "sha256=abc123") {
				t.Errorf("an invalid hash reached the API: %s", r)
			}
		}
		want := sum(testenv.EICAR)
		eval[string](t, p, `document.querySelector('#search-sha256').value = ''`)
		p.do(t, "search for EICAR's hash",
			chromedp.SendKeys(chromedp.CSS("#search-sha256"), strings.ToUpper(want)),
			chromedp.Click(chromedp.CSS("#search-submit")),
		)
		p.waitFor(t, fmt.Sprintf(`location.hash === '#/?sha256=%s' && document.querySelectorAll('#jobs tbody tr').length === 1`, want))
		p.mustContain(t, `#jobs tbody tr`, "eicar.com")
		p.mustContain(t, "#search-banner", want)
		if eval[bool](t, p, `!document.querySelector('#search-error').hidden`) {
			t.Error("the error still shows after a valid search")
		}
		p.do(t, "show all", chromedp.Click(chromedp.CSS("#search-banner a")))
		p.waitFor(t, `location.hash === '#/' && document.querySelectorAll('#jobs tbody tr').length === 3`)
	})

	var id string
	t.Run("details", func(t *testing.T) {
		id = eval[string](t, p, `document.querySelector('#jobs tbody tr[data-verdict="infected"]').dataset.id`)
		p.do(t, "open the job",
			chromedp.Click(chromedp.CSS(`#jobs tbody tr[data-verdict="infected"] a`)),
			chromedp.WaitVisible(chromedp.CSS("#job-fields")),
		)
		if got := eval[string](t, p, "location.hash"); got != "#/jobs/"+id {
			t.Errorf("location.hash = %q, want #/jobs/%s", got, id)
		}
		p.mustContain(t, "#job-title", "INFECTED", "eicar.com")
		p.mustContain(t, "#job-fields", id, "done", sum(testenv.EICAR), "68 bytes", "Created", "Finished")
		p.mustContain(t, "#job-source", "upload")
		p.mustContain(t, "#job-findings", "builtin", testenv.EICARSignature)
		p.mustContain(t, "#job-engines", "builtin", "INFECTED", " ms")
		raw := eval[string](t, p, `document.querySelector('details.raw pre').textContent`)
		var job map[string]any
		if err := json.Unmarshal([]byte(raw), &job); err != nil {
			t.Fatalf("raw JSON: %v", err)
		}
		if job["id"] != id || job["verdict"] != "infected" {
			t.Errorf("raw JSON id, verdict = %v, %v; want %s, infected", job["id"], job["verdict"], id)
		}
		p.screenshot(t, "job-dark")
	})

	t.Run("details by URL", func(t *testing.T) {
		p.do(t, "reload on the job's URL",
			chromedp.Navigate(s.URL+"/#/jobs/"+id),
			chromedp.WaitVisible(chromedp.CSS("#job-findings")),
		)
		p.mustContain(t, "#job-findings", testenv.EICARSignature)
		p.do(t, "an unknown job",
			chromedp.Navigate(s.URL+"/#/jobs/01JD6Q3K8M4Z7X2V9B1N5T0RCE"),
			chromedp.WaitVisible(chromedp.CSS("#job-detail .alert")),
		)
		p.mustContain(t, "#job-detail", "Job not available", "no job")
	})

	t.Run("engines", func(t *testing.T) {
		p.do(t, "open engines",
			chromedp.Click(chromedp.CSS("#nav-engines")),
			chromedp.WaitVisible(chromedp.CSS(`#engines tr[data-name="builtin"]`)),
		)
		p.mustContain(t, `#engines tr[data-name="builtin"]`, "builtin", "HEALTHY")
		p.screenshot(t, "engines-dark")
		if got := eval[string](t, p, `document.querySelector('#nav-engines').getAttribute('aria-current')`); got != "page" {
			t.Errorf("engines link aria-current = %q, want page", got)
		}
	})

	t.Run("load more", func(t *testing.T) {
		for i := range 50 {
			scanRaw(t, s.URL, fmt.Sprintf("bulk-%02d.txt", i), []byte(fmt.Sprintf("bulk sample %d", i)))
		}
		p.do(t, "list the jobs",
			chromedp.Click(chromedp.CSS("#nav-jobs")),
			chromedp.WaitVisible(chromedp.CSS("#view-jobs")),
		)
		p.waitFor(t, `document.querySelectorAll('#jobs tbody tr').length === 50 && !document.querySelector('#load-more').hidden && !document.querySelector('#jobs').hasAttribute('aria-busy')`)
		p.mustContain(t, "#jobs tbody tr:first-child", "bulk-49.txt")
		p.do(t, "load more", chromedp.Click(chromedp.CSS("#load-more")))
		p.waitFor(t, `document.querySelectorAll('#jobs tbody tr').length === 53 && document.querySelector('#load-more').hidden`)
		p.mustContain(t, "#jobs tbody tr:last-child", "eicar.com")
	})

	t.Run("no token sent", func(t *testing.T) {
		for _, r := range s.requests() {
			if strings.HasSuffix(r, " auth") {
				t.Errorf("request %s carried a token, but none was entered", r)
			}
		}
	})
}

// TestBrowserToken runs the console against an API that wants tokens: the
// page asks for one, refuses a wrong one, works with a right one, keeps it
// for the tab, never puts it in a URL, and forgets it on request.
func TestBrowserToken(t *testing.T) {
	const (
		submitToken = "console-submit-token-0123456789"
		readToken   = "console-read-token-0123456789"
	)
	s := startServer(t,
		api.Token{Name: "submitter", Role: api.RoleSubmit, Value: submitToken},
		api.Token{Name: "reader", Role: api.RoleRead, Value: readToken},
	)
	p := newPage(t)
	eicar := writeSample(t, "eicar.com", testenv.EICAR)

	p.do(t, "open the console",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#auth")),
		chromedp.WaitNotVisible(chromedp.CSS("#view-jobs")),
	)
	p.mustContain(t, "#auth-message", "needs an API token")
	if !eval[bool](t, p, `document.activeElement === document.querySelector('#auth-token')`) {
		t.Error("the token field does not have the focus")
	}
	p.screenshot(t, "auth")

	p.do(t, "enter a wrong token",
		chromedp.SendKeys(chromedp.CSS("#auth-token"), "wrong-token-0123456789"),
		chromedp.Click(chromedp.CSS("#auth-submit")),
	)
	p.waitFor(t, `!document.querySelector('#auth').hidden && document.querySelector('#auth-message').textContent.includes('not accepted')`)

	p.do(t, "enter the token",
		chromedp.SendKeys(chromedp.CSS("#auth-token"), submitToken),
		chromedp.Click(chromedp.CSS("#auth-submit")),
		chromedp.WaitVisible(chromedp.CSS("#view-jobs")),
		chromedp.WaitVisible(chromedp.CSS("#jobs-empty")),
		chromedp.WaitVisible(chromedp.CSS("#forget-token")),
	)
	p.upload(t, eicar, "infected")
	p.mustContain(t, "#upload-result", testenv.EICARSignature)
	p.waitFor(t, `document.querySelector('#jobs tbody tr[data-verdict="infected"]')`)
	if got := eval[string](t, p, `sessionStorage.getItem('lazaret.token')`); got != submitToken {
		t.Errorf("sessionStorage token = %q, want the entered token", got)
	}
	if got := eval[int](t, p, `localStorage.length`); got != 0 {
		t.Errorf("localStorage has %d items, want none", got)
	}

	p.do(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#jobs tbody tr[data-verdict="infected"]`)))
	if eval[bool](t, p, `!document.querySelector('#auth').hidden`) {
		t.Error("the token form shows again after a reload in the same tab")
	}

	p.do(t, "forget the token",
		chromedp.Click(chromedp.CSS("#forget-token")),
		chromedp.WaitVisible(chromedp.CSS("#auth")),
	)
	if got := eval[string](t, p, `String(sessionStorage.getItem('lazaret.token'))`); got != "null" {
		t.Errorf("sessionStorage token after forgetting = %q, want none", got)
	}

	p.do(t, "enter a read-only token",
		chromedp.SendKeys(chromedp.CSS("#auth-token"), readToken),
		chromedp.Click(chromedp.CSS("#auth-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tbody tr[data-verdict="infected"]`)),
		chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{eicar}),
		chromedp.Click(chromedp.CSS("#upload-submit")),
	)
	p.waitFor(t, `document.querySelector('#upload-result .alert')`)
	p.mustContain(t, "#upload-result", "Scan failed", "submit role")

	for _, r := range s.requests() {
		for _, tok := range []string{submitToken, readToken, "wrong-token"} {
			if strings.Contains(r, tok) {
				t.Errorf("a token is in a URL: %s", r)
			}
		}
		if strings.HasPrefix(r, "GET /v1/") || strings.HasPrefix(r, "POST /v1/") {
			continue
		}
		if strings.HasSuffix(r, " auth") {
			t.Errorf("asset request %s carried the token", r)
		}
	}
	if href := eval[string](t, p, "location.href"); strings.Contains(href, "token") {
		t.Errorf("location = %q, want no token in it", href)
	}
}

// TestBrowserReport: a job's details link each analyzer report, with its
// size and type, and only for the engine runs that wrote one; a click
// downloads it through the API with the tab's token (never in a URL), and
// a report no longer kept says so on the page.
func TestBrowserReport(t *testing.T) {
	const token = "console-report-token-0123456789"
	s := startServer(t, api.Token{Name: "reader", Role: api.RoleRead, Value: token})
	ctx := t.Context()
	report := []byte(`{"verdict": "clean", "note": "<img src=x onerror=window.pwned=1>"}`)
	key := sum(report)
	if _, err := s.reports.Put(ctx, key, bytes.NewReader(report)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ids := map[string]string{}
	for name, engines := range map[string][]scan.EngineRun{
		"with-report.apk": {{Name: "builtin", Verdict: scan.Clean},
			{Name: "apk tool", Verdict: scan.Clean, Report: &scan.Report{SHA256: key, Size: int64(len(report)), ContentType: "application/json"}}},
		"no-report.txt": {{Name: "builtin", Verdict: scan.Clean}},
		"gone.apk":      {{Name: "apk tool", Verdict: scan.Clean, Report: &scan.Report{SHA256: strings.Repeat("ab", 32), Size: 3, ContentType: "text/plain"}}},
	} {
		j := &scan.Job{ID: s.ids.NewID(), Name: name, Status: scan.Done, Verdict: scan.Clean, Source: scan.Source{Kind: "upload"},
			Engines: engines, CreatedAt: now, FinishedAt: &now}
		if err := s.store.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		ids[name] = j.ID
	}
	p := newPage(t)
	downloads := t.TempDir()
	p.do(t, "allow downloads", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		})
		return chromedp.Void{}, err
	})
	p.do(t, "enter the token",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#auth")),
		chromedp.SendKeys(chromedp.CSS("#auth-token"), token),
		chromedp.Click(chromedp.CSS("#auth-submit")),
		chromedp.WaitVisible(chromedp.CSS("#jobs tbody tr")),
	)
	open := func(t *testing.T, name string) {
		t.Helper()
		p.do(t, "open "+name,
			chromedp.Navigate(s.URL+"/#/jobs/"+ids[name]),
			chromedp.WaitVisible(chromedp.CSS("#job-engines")),
		)
		p.waitFor(t, fmt.Sprintf(`location.hash === '#/jobs/%s' && document.querySelector('#job-title').textContent.includes(%q)`, ids[name], name))
	}

	t.Run("with a report", func(t *testing.T) {
		open(t, "with-report.apk")
		links := eval[[]string](t, p, `[...document.querySelectorAll('#job-engines a.report-link')].map((a) => a.getAttribute('href'))`)
		if want := "/v1/jobs/" + ids["with-report.apk"] + "/report?engine=apk%20tool"; len(links) != 1 || links[0] != want {
			t.Fatalf("report links = %q, want [%s]", links, want)
		}
		p.mustContain(t, "#job-engines thead", "REPORT")
		p.mustContain(t, `#job-engines tbody tr:nth-child(2)`, "apk tool", "Download report", fmt.Sprintf("%d B", len(report)), "application/json")
		if got := eval[string](t, p, `document.querySelector('#job-engines tbody tr:first-child td:last-child').textContent`); got != "" {
			t.Errorf("the builtin engine's report cell = %q, want it empty", got)
		}
		p.screenshot(t, "job-report")

		p.do(t, "download the report", chromedp.Click(chromedp.CSS("#job-engines a.report-link")))
		path := filepath.Join(downloads, ids["with-report.apk"]+"-apk_tool.json")
		deadline := time.Now().Add(10 * time.Second)
		var got []byte
		for {
			var err error
			if got, err = os.ReadFile(path); err == nil && bytes.Equal(got, report) {
				break
			}
			if time.Now().After(deadline) {
				ents, _ := os.ReadDir(downloads)
				t.Fatalf("downloaded %q (folder: %v), want the report in %s", got, ents, path)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if eval[bool](t, p, `window.pwned !== undefined`) {
			t.Error("the report's content ran as markup")
		}
		want := "GET /v1/jobs/" + ids["with-report.apk"] + "/report?engine=apk%20tool auth"
		if reqs := s.requests(); !slices.Contains(reqs, want) {
			t.Errorf("requests %q, want %q", reqs, want)
		}
	})

	t.Run("without a report", func(t *testing.T) {
		open(t, "no-report.txt")
		p.mustContain(t, "#job-engines", "builtin")
		if n := eval[int](t, p, `document.querySelectorAll('#job-detail a.report-link').length`); n != 0 {
			t.Errorf("%d report links, want none", n)
		}
		if eval[bool](t, p, `document.querySelector('#job-engines thead').textContent.includes('Report')`) {
			t.Error("a Report column shows for a job without reports")
		}
	})

	t.Run("a report no longer kept", func(t *testing.T) {
		open(t, "gone.apk")
		p.mustContain(t, "#job-engines", "Download report", "3 B", "text/plain")
		p.do(t, "download the report", chromedp.Click(chromedp.CSS("#job-engines a.report-link")))
		p.waitFor(t, `document.querySelector('#status .alert')`)
		p.mustContain(t, "#status", "Could not download the report", "no longer kept")
		if eval[bool](t, p, `!document.querySelector('#auth').hidden`) {
			t.Error("the token form shows, want the job still")
		}
	})

	for _, r := range s.requests() {
		if strings.Contains(r, token) {
			t.Errorf("the token is in a URL: %s", r)
		}
	}
}
