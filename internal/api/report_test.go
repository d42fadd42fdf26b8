package api

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
)

func TestReportRoute(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reports, err := blob.NewDir(filepath.Join(t.TempDir(), "reports"))
	if err != nil {
		t.Fatal(err)
	}
	engines, err := build.Engines(ctx, config.DefaultEngines(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Engines: engines.List(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"verdict": "clean", "note": "<script>alert(1)</script>"}`
	sum := sha256.Sum256([]byte(body))
	key := hex.EncodeToString(sum[:])
	if _, err := reports.Put(ctx, key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	ref := func(key string, size int64, ct string) *scan.Report {
		return &scan.Report{SHA256: key, Size: size, ContentType: ct}
	}
	gone := strings.Repeat("ab", 32)
	now := time.Now().UTC()
	jobs := map[string]*scan.Job{
		"withReport": {Engines: []scan.EngineRun{{Name: "clamav"}, {Name: "apk tool", Report: ref(key, int64(len(body)), "application/json")}}},
		"noReport":   {Engines: []scan.EngineRun{{Name: "clamav"}}},
		"gone":       {Engines: []scan.EngineRun{{Name: "a", Report: ref(gone, 3, "text/plain")}}},
		"badSize":    {Engines: []scan.EngineRun{{Name: "a", Report: ref(key, 3, "text/plain")}}},
		"badType":    {Engines: []scan.EngineRun{{Name: "a", Report: ref(key, int64(len(body)), "not a type")}}},
		"queued":     {Status: scan.Queued},
	}
	ids := map[string]string{}
	for name, j := range jobs {
		j.ID, j.CreatedAt, j.Name = p.NewID(), now, name
		if j.Status == "" {
			j.Status, j.Verdict, j.FinishedAt = scan.Done, scan.Clean, &now
		}
		if err := st.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		ids[name] = j.ID
	}
	serve := func(cfg Config) *httptest.Server {
		cfg.Scanner, cfg.Jobs, cfg.Engines = p, st, engines
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve(Config{Reports: reports})
	get := func(srv *httptest.Server, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, b := get(srv, "/v1/jobs/"+ids["withReport"]+"/report")
	if resp.StatusCode != 200 || b != body {
		t.Fatalf("got %d %q, want the report", resp.StatusCode, b)
	}
	for k, want := range map[string]string{
		"Content-Type":            "application/json",
		"Content-Disposition":     "attachment; filename=" + ids["withReport"] + "-apk_tool.json",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox; default-src 'none'",
		"ETag":                    `"` + key + `"`,
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if resp, b := get(srv, "/v1/jobs/"+ids["withReport"]+"/report", "Range", "bytes=0-9"); resp.StatusCode != http.StatusPartialContent || b != body[:10] {
		t.Errorf("range: got %d %q", resp.StatusCode, b)
	}
	if resp, _ := get(srv, "/v1/jobs/"+ids["withReport"]+"/report", "If-None-Match", `"`+key+`"`); resp.StatusCode != http.StatusNotModified {
		t.Errorf("if-none-match: got %d, want 304", resp.StatusCode)
	}
	if resp, b := get(srv, "/v1/jobs/"+ids["withReport"]+"/report?engine=apk%20tool"); resp.StatusCode != 200 || b != body {
		t.Errorf("?engine=: got %d %q", resp.StatusCode, b)
	}
	if resp, b := get(srv, "/link/"+ids["withReport"]); resp.StatusCode != 200 || b != body {
		t.Errorf("menagerie link: got %d %q, want the report", resp.StatusCode, b)
	}
	if resp, b := get(srv, "/link/"+ids["noReport"]); resp.StatusCode != 200 || !strings.Contains(b, `"id":"`+ids["noReport"]+`"`) {
		t.Errorf("menagerie link without a report: got %d %q, want the job", resp.StatusCode, b)
	}
	if resp, _ := get(srv, "/v1/jobs/"+ids["badType"]+"/report"); resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("invalid content type: served as %q, want application/octet-stream", resp.Header.Get("Content-Type"))
	}

	for _, tc := range []struct {
		srv    *httptest.Server
		path   string
		status int
		code   string
	}{
		{srv, "/v1/jobs/" + ids["noReport"] + "/report", 404, "no_report"},
		{srv, "/v1/jobs/" + ids["withReport"] + "/report?engine=clamav", 404, "no_report"},
		{srv, "/v1/jobs/" + ids["queued"] + "/report", 404, "not_ready"},
		{srv, "/v1/jobs/" + ids["gone"] + "/report", 410, "report_gone"},
		{srv, "/v1/jobs/" + ids["badSize"] + "/report", 500, "internal"},
		{srv, "/v1/jobs/01M85N2E9B8XQYAXZ5V4VQ24PW/report", 404, "not_found"},
		{serve(Config{}), "/v1/jobs/" + ids["withReport"] + "/report", 404, "no_report"},
	} {
		resp, b := get(tc.srv, tc.path)
		if resp.StatusCode != tc.status || !strings.Contains(b, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: got %d %s, want %d %s", tc.path, resp.StatusCode, b, tc.status, tc.code)
		}
	}
}
