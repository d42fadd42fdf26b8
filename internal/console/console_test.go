package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSecurityHeaders checks the headers every answer carries, found or
// not.
func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy = %q, want it to contain %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("Content-Security-Policy = %q, must not contain %q", csp, bad)
		}
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := res.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q, want DENY", got)
	}
}

func TestHandlerServesAssets(t *testing.T) {
	tests := []struct {
		path        string
		contentType string
		contains    string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/assets/app.js" defer></script>`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "'use strict';"},
		{"/assets/style.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	h := Handler()
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tt.path, nil)
			b := body(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %q", res.StatusCode, b)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if !strings.Contains(b, tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/index.html", "/assets/", "/assets", "/assets/nope.js", "/app.js", "/style.css", "/nope",
		"/v1/nope", "/assets/app.js/", "/assets/APP.JS", "/favicon.ico", "/assets/../console.go", "/console.go"} {
		t.Run(p, func(t *testing.T) {
			res := get(t, h, http.MethodGet, p, nil)
			b := body(t, res)
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var e struct{ Error, Code string }
			if err := json.Unmarshal([]byte(b), &e); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if e.Code != "not_found" || e.Error == "" {
				t.Errorf("body = %+v, want code not_found and a message", e)
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestHandlerMethods(t *testing.T) {
	h := Handler()
	t.Run("HEAD", func(t *testing.T) {
		res := get(t, h, http.MethodHead, "/", nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", res.StatusCode)
		}
		if b := body(t, res); b != "" {
			t.Errorf("HEAD body = %q, want none", b)
		}
		if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q", got)
		}
	})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		t.Run(m, func(t *testing.T) {
			res := get(t, h, m, "/", nil)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("status = %d, want 405", res.StatusCode)
			}
			if got := res.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("Allow = %q, want GET, HEAD", got)
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestHandlerConditionalGet(t *testing.T) {
	h := Handler()
	res := get(t, h, http.MethodGet, "/assets/app.js", nil)
	etag := res.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("ETag = %q, want a quoted hex digest", etag)
	}
	res = get(t, h, http.MethodGet, "/assets/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("status with matching If-None-Match = %d, want 304", res.StatusCode)
	}
	res = get(t, h, http.MethodGet, "/assets/app.js", http.Header{"If-None-Match": {`"other"`}})
	if res.StatusCode != http.StatusOK {
		t.Errorf("status with other If-None-Match = %d, want 200", res.StatusCode)
	}
}

// TestAssetsSelfContained checks what the CSP and the offline rule need:
// no inline script or style, no event-handler attributes, no other
// origin, no HTML built from strings in the script.
func TestAssetsSelfContained(t *testing.T) {
	index := string(files["/"].body)
	for _, m := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(index, -1) {
		if !strings.Contains(m, `src="/assets/`) {
			t.Errorf("index.html has an inline script: %s", m)
		}
	}
	for _, re := range []string{`(?is)<style\b`, `(?i)\sstyle\s*=`, `(?i)\son[a-z]+\s*=`, `(?i)javascript:`} {
		if loc := regexp.MustCompile(re).FindStringIndex(index); loc != nil {
			t.Errorf("index.html matches %s at %q", re, index[loc[0]:min(loc[1]+40, len(index))])
		}
	}
	js := string(files["/assets/app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for p, f := range files {
		for _, m := range external.FindAllString(string(f.body), -1) {
			if m == "http://www.w3.org" { // an SVG namespace, never fetched
				continue
			}
			t.Errorf("%s refers to another origin: %s", p, m)
		}
		if strings.Contains(string(f.body), "@import") {
			t.Errorf("%s imports something", p)
		}
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr string
	}{
		{"ok", fstest.MapFS{"assets/index.html": {Data: []byte("x")}, "assets/a.js": {Data: []byte("y")}}, ""},
		{"no index", fstest.MapFS{"assets/a.js": {Data: []byte("y")}}, "index.html is missing"},
		{"unknown type", fstest.MapFS{"assets/index.html": {Data: []byte("x")}, "assets/a.wasm": {}}, "no content type"},
		{"no dir", fstest.MapFS{}, "assets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := load(tt.fsys)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m["/assets/a.js"]; !ok {
					t.Errorf("got paths %v, want /assets/a.js", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
