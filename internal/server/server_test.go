package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/testenv"
)

const eicarSHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

type client struct {
	t     *testing.T
	base  string
	token string
}

func start(t *testing.T, mutate func(*config.Config), opts Options) *client {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Engines = config.DefaultEngines()
	cfg.Queue.AckWait = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	opts.HTTP, opts.Workers = true, true
	a, err := Start(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &client{t: t, base: "http://" + a.Addr()}
}

func (c *client) do(method, path, contentType string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// upload sends files as multipart fields named field.
func (c *client) upload(path, field string, files map[string][]byte) (int, []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, data := range files {
		w, _ := mw.CreateFormFile(field, name)
		w.Write(data)
	}
	mw.Close()
	return c.do("POST", path, mw.FormDataContentType(), &buf)
}

func decodeJob(t *testing.T, b []byte) scan.Job {
	t.Helper()
	var j scan.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("not a job: %v: %s", err, b)
	}
	return j
}

func (c *client) waitDone(id string) scan.Job {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code, b := c.do("GET", "/v1/jobs/"+id, "", nil)
		if code != 200 {
			c.t.Fatalf("get job: %d %s", code, b)
		}
		if j := decodeJob(c.t, b); j.Status == scan.Done {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("job %s not done in time", id)
	return scan.Job{}
}

func TestSyncScan(t *testing.T) {
	c := start(t, nil, Options{})
	code, b := c.upload("/v1/scan", "file", map[string][]byte{"eicar.com": testenv.EICAR})
	j := decodeJob(t, b)
	if code != 200 || j.Verdict != scan.Infected || j.SHA256 != eicarSHA || j.Name != "eicar.com" || j.FirstSignature() != "Eicar-Test-Signature" {
		t.Errorf("got %d %s", code, b)
	}
	// Raw body with ?name=.
	code, b = c.do("POST", "/v1/scan?name=hello.txt", "application/octet-stream", strings.NewReader("hello"))
	if j := decodeJob(t, b); code != 200 || j.Verdict != scan.Clean || j.Name != "hello.txt" {
		t.Errorf("raw: got %d %s", code, b)
	}
	// Several files: an array.
	code, b = c.upload("/v1/scan", "file", map[string][]byte{"a": []byte("a"), "b": testenv.EICAR})
	var jobs []scan.Job
	if err := json.Unmarshal(b, &jobs); err != nil || code != 200 || len(jobs) != 2 {
		t.Errorf("two files: got %d %s", code, b)
	}
	// The verdict is now cached for that content.
	code, b = c.do("GET", "/v1/verdicts/"+eicarSHA, "", nil)
	if j := decodeJob(t, b); code != 200 || j.Verdict != scan.Infected || !j.Cached {
		t.Errorf("verdict: got %d %s", code, b)
	}
	code, _ = c.do("GET", "/v1/verdicts/"+strings.Repeat("0", 64), "", nil)
	if code != 404 {
		t.Errorf("unknown verdict: got %d, want 404", code)
	}
	// Listing and filters.
	code, b = c.do("GET", "/v1/jobs?verdict=infected&limit=10", "", nil)
	var page struct {
		Jobs       []scan.Job `json:"jobs"`
		NextCursor string     `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &page); err != nil || code != 200 || len(page.Jobs) != 2 {
		t.Errorf("list infected: got %d %s", code, b)
	}
	for _, j := range page.Jobs {
		if j.Verdict != scan.Infected {
			t.Errorf("filter let through %s", j.Verdict)
		}
	}
	code, b = c.do("GET", "/v1/engines", "", nil)
	if code != 200 || !strings.Contains(string(b), `"healthy":true`) {
		t.Errorf("engines: got %d %s", code, b)
	}
	code, b = c.do("GET", "/metrics", "", nil)
	if code != 200 || !strings.Contains(string(b), `lazaret_scans_total{cached="false",reason="",verdict="infected"}`) {
		t.Errorf("metrics: got %d, missing scan counter", code)
	}
}

func TestAsyncJobsAndMenagerie(t *testing.T) {
	c := start(t, nil, Options{})
	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"eicar.com": testenv.EICAR})
	j := decodeJob(t, b)
	if code != 202 || j.Status != scan.Queued || j.Verdict != "" || j.SHA256 != eicarSHA {
		t.Fatalf("got %d %s", code, b)
	}
	done := c.waitDone(j.ID)
	if done.Verdict != scan.Infected || done.Attempts != 1 {
		t.Errorf("got %+v", done)
	}

	code, b = c.upload("/builtin/upload", "upload", map[string][]byte{"sample.apk": testenv.EICAR})
	var up struct{ JobID string }
	if err := json.Unmarshal(b, &up); err != nil || code != 200 || up.JobID == "" {
		t.Fatalf("menagerie upload: got %d %s", code, b)
	}
	c.waitDone(up.JobID)
	code, b = c.do("GET", "/result/"+up.JobID, "", nil)
	if code != 200 || !strings.Contains(string(b), `"status":"Success"`) || !strings.Contains(string(b), "/link/"+up.JobID) {
		t.Errorf("result: got %d %s", code, b)
	}
	code, b = c.do("GET", "/link/"+up.JobID, "", nil)
	if j := decodeJob(t, b); code != 200 || j.Verdict != scan.Infected || j.Source.Engine != "builtin" {
		t.Errorf("link: got %d %s", code, b)
	}
}

func TestBadInput(t *testing.T) {
	c := start(t, func(cfg *config.Config) { cfg.Limits.MaxSize = 1024 }, Options{})
	for _, tc := range []struct {
		name        string
		method, url string
		ctype       string
		body        io.Reader
		want        int
		wantCode    string
	}{
		{"malformed multipart", "POST", "/v1/scan", "multipart/form-data; boundary=xyz", strings.NewReader("--xyz\r\nbroken"), 400, "bad_request"},
		{"multipart without boundary", "POST", "/v1/scan", "multipart/form-data", strings.NewReader("x"), 400, "bad_request"},
		{"body over the limit", "POST", "/v1/scan?name=big", "application/octet-stream", bytes.NewReader(make([]byte, 2<<20)), 413, "too_large"},
		{"unknown job", "GET", "/v1/jobs/01M85N2E9B8XQYAXZ5V4VQ24PW", "", nil, 404, "not_found"},
		{"invalid job id", "GET", "/v1/jobs/../../etc/passwd", "", nil, 404, "not_found"},
		{"invalid job id chars", "GET", "/v1/jobs/hello", "", nil, 404, "not_found"},
		{"bad sha256", "GET", "/v1/verdicts/xyz", "", nil, 400, "bad_request"},
		{"bad limit", "GET", "/v1/jobs?limit=0", "", nil, 400, "bad_request"},
		{"bad verdict filter", "GET", "/v1/jobs?verdict=maybe", "", nil, 400, "bad_request"},
		{"bad since", "GET", "/v1/jobs?since=yesterday", "", nil, 400, "bad_request"},
		{"unknown engine upload", "POST", "/nope/upload", "application/octet-stream", strings.NewReader("x"), 404, "unknown_engine"},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404, "not_found"},
		{"report of unknown job", "GET", "/v1/jobs/01M85N2E9B8XQYAXZ5V4VQ24PW/report", "", nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := c.do(tc.method, tc.url, tc.ctype, tc.body)
			var e struct{ Error, Code string }
			json.Unmarshal(b, &e)
			if code != tc.want || e.Code != tc.wantCode || e.Error == "" {
				t.Errorf("got %d %s, want %d with code %q", code, b, tc.want, tc.wantCode)
			}
		})
	}
	// No file field.
	code, b := c.upload("/v1/scan", "other", map[string][]byte{"x": []byte("x")})
	if code != 400 || !strings.Contains(string(b), "no_file") {
		t.Errorf("no file field: got %d %s", code, b)
	}
	// A file over max_size but within the body limit: scanned as skipped, never clean.
	code, b = c.do("POST", "/v1/scan?name=big", "application/octet-stream", bytes.NewReader(make([]byte, 4096)))
	if j := decodeJob(t, b); code != 200 || j.Verdict != scan.Skipped || j.Reason != scan.ReasonTooLarge {
		t.Errorf("over max_size: got %d %s", code, b)
	}
	// A report route for an existing job without a report.
	_, b = c.upload("/v1/scan", "file", map[string][]byte{"x": []byte("x")})
	j := decodeJob(t, b)
	code, b = c.do("GET", "/v1/jobs/"+j.ID+"/report", "", nil)
	if code != 404 || !strings.Contains(string(b), "no_report") {
		t.Errorf("report: got %d %s", code, b)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "submit.token")
	os.WriteFile(tokenFile, []byte("submit-token-0123456789\n"), 0o600)
	c := start(t, func(cfg *config.Config) {
		cfg.Auth.Tokens = []config.Token{
			{Name: "reader", Role: "read", Token: "read-token-0123456789"},
			{Name: "uploader", Role: "submit", TokenFile: tokenFile},
		}
	}, Options{})
	for _, tc := range []struct {
		token, method, path string
		want                int
	}{
		{"", "GET", "/v1/jobs", 401},
		{"wrong-token-0123456789", "GET", "/v1/jobs", 401},
		{"read-token-0123456789", "GET", "/v1/jobs", 200},
		{"read-token-0123456789", "POST", "/v1/scan?name=x", 403},
		{"submit-token-0123456789", "POST", "/v1/scan?name=x", 200},
		{"", "GET", "/healthz", 200},
		{"", "GET", "/readyz", 200},
		{"", "GET", "/metrics", 401},
		{"read-token-0123456789", "GET", "/metrics", 200},
	} {
		c.token = tc.token
		code, b := c.do(tc.method, tc.path, "application/octet-stream", strings.NewReader("x"))
		if code != tc.want {
			t.Errorf("%s %s with %q: got %d %s, want %d", tc.method, tc.path, tc.token, code, b, tc.want)
		}
	}
}

func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.Engines = "0.0.0.0:0", t.TempDir(), config.DefaultEngines()
	if _, err := Start(context.Background(), cfg, Options{HTTP: true}); err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Errorf("got %v, want a refusal naming --insecure-no-auth", err)
	}
}

func TestClamdDown(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	c := start(t, func(cfg *config.Config) {
		cfg.Engines = []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: clamd.TCP, Timeout: 5 * time.Second}}
	}, Options{})
	code, b := c.do("GET", "/readyz", "", nil)
	if code != 200 {
		t.Fatalf("readyz with clamd up: got %d %s", code, b)
	}
	clamd.Kill()
	code, b = c.do("POST", "/v1/scan?name=x", "application/octet-stream", strings.NewReader("hello"))
	j := decodeJob(t, b)
	if code != 503 || j.Verdict != scan.Error || j.Reason != scan.ReasonEngineError {
		t.Errorf("scan with clamd down: got %d %s, want 503 error/engine_error", code, b)
	}
	// The job is recorded as an error.
	code, b = c.do("GET", "/v1/jobs/"+j.ID, "", nil)
	if stored := decodeJob(t, b); code != 200 || stored.Verdict != scan.Error {
		t.Errorf("stored job: got %d %s", code, b)
	}
	code, b = c.do("GET", "/readyz", "", nil)
	if code != 503 || !strings.Contains(string(b), "engine clamav") {
		t.Errorf("readyz with clamd down: got %d %s, want 503 naming the engine", code, b)
	}
}

func TestQueuedJobRetriesThenErrors(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	clamd.Kill()
	c := start(t, func(cfg *config.Config) {
		cfg.Engines = []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: clamd.TCP, Timeout: 2 * time.Second}}
		cfg.Queue.MaxDeliveries = 2
	}, Options{})
	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"x": []byte("x")})
	if code != 202 {
		t.Fatalf("got %d %s", code, b)
	}
	j := c.waitDoneWithin(decodeJob(t, b).ID, 60*time.Second)
	if j.Verdict != scan.Error || j.Attempts != 2 {
		t.Errorf("got verdict %s after %d attempts, want error after 2", j.Verdict, j.Attempts)
	}
}

func (c *client) waitDoneWithin(id string, d time.Duration) scan.Job {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_, b := c.do("GET", "/v1/jobs/"+id, "", nil)
		if j := decodeJob(c.t, b); j.Status == scan.Done {
			return j
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("job %s not done within %v", id, d)
	return scan.Job{}
}

// TestShutdownFinishesInFlightScans: a graceful stop lets a running
// synchronous scan answer.
func TestShutdownFinishesInFlightScans(t *testing.T) {
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.Engines = []config.Engine{{Name: "slow", Type: config.TypeCommand, Version: "1",
		Command: []string{"/bin/sh", "-c", "sleep 1", "sh", "{path}"}, InfectedWhen: &config.InfectedWhen{ExitCodes: []int{1}}}}
	a, err := Start(context.Background(), cfg, Options{HTTP: true, Workers: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, base: "http://" + a.Addr()}
	type result struct {
		code int
		body []byte
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", c.base+"/v1/scan?name=x", strings.NewReader("hello"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, b}
	}()
	time.Sleep(300 * time.Millisecond) // the scan is running
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if j := decodeJob(t, r.body); r.code != 200 || j.Verdict != scan.Clean {
		t.Errorf("in-flight scan: got %d %s, want 200 clean", r.code, r.body)
	}
}

// TestAsyncJobsOnRabbitMQ: the same async flow with RabbitMQ as the job
// queue (queue.url: amqp://...).
func TestAsyncJobsOnRabbitMQ(t *testing.T) {
	amqpURL := testenv.AMQP(t)
	c := start(t, func(cfg *config.Config) { cfg.Queue.URL = config.Secret(amqpURL) }, Options{})
	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"eicar.com": testenv.EICAR})
	if code != 202 {
		t.Fatalf("got %d %s", code, b)
	}
	if j := c.waitDone(decodeJob(t, b).ID); j.Verdict != scan.Infected {
		t.Errorf("got %+v", j)
	}
	code, b = c.do("GET", "/readyz", "", nil)
	if code != 200 {
		t.Errorf("readyz: %d %s", code, b)
	}
}

// TestMaxSignatureAge: readiness fails when an engine's signatures are
// older than limits.max_signature_age.
func TestMaxSignatureAge(t *testing.T) {
	sigs := t.TempDir()
	if err := testenv.WriteSignatures(sigs); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	entries, _ := os.ReadDir(sigs)
	for _, e := range entries {
		os.Chtimes(filepath.Join(sigs, e.Name()), old, old)
	}
	c := start(t, func(cfg *config.Config) {
		cfg.Engines = []config.Engine{{Name: "blocklist", Type: config.TypeBuiltin, Signatures: sigs}}
		cfg.Limits.MaxSignatureAge = 24 * time.Hour
	}, Options{})
	code, b := c.do("GET", "/readyz", "", nil)
	if code != 503 || !strings.Contains(string(b), "max_signature_age") {
		t.Errorf("got %d %s, want 503 naming max_signature_age", code, b)
	}
	_, b = c.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(b), `lazaret_engine_signature_age_seconds{engine="blocklist"} 1728`) {
		t.Errorf("metric missing or wrong (want ~172800 s)")
	}
}

// TestScheduledRescan: serve runs rescans on rescan.schedule.
func TestScheduledRescan(t *testing.T) {
	var logs testenv.Buffer
	c := start(t, func(cfg *config.Config) { cfg.Rescan.Schedule = "@every 1s" },
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.do("POST", "/v1/scan?name=x", "application/octet-stream", strings.NewReader("hello"))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(logs.String(), "scheduled rescan done") {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `msg="scheduled rescan done" part=rescan checked=1`) {
		t.Errorf("no scheduled rescan in the log:\n%s", logs.String())
	}
}

// TestProxyInServe: a gate from the `proxies` configuration answers under
// /proxy/<name>/, without a token even when tokens are configured.
func TestProxyInServe(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pkgs/clean.txt":
			w.Write([]byte("clean bytes"))
		case "/pkgs/eicar.com":
			w.Write(testenv.EICAR)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	c := start(t, func(cfg *config.Config) {
		cfg.Proxies = []config.Proxy{{Name: "files", Upstream: config.Secret(up.URL)}}
		cfg.Auth.Tokens = []config.Token{{Name: "admin", Role: "admin", Token: "admin-token-0123456789"}}
	}, Options{})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/proxy/files/pkgs/clean.txt", 200},
		{"/proxy/files/pkgs/eicar.com", 409},
		{"/proxy/files/pkgs/missing", 404},
		{"/proxy/other/pkgs/clean.txt", 404},
	} {
		code, b := c.do("GET", tc.path, "", nil)
		if code != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.path, code, b, tc.want)
		}
		if tc.want == 200 && string(b) != "clean bytes" {
			t.Errorf("%s: got body %q", tc.path, b)
		}
	}
}

// TestKeptUploadsAreRescanned: with keep_uploads, an upload scanned clean
// is re-checked by the scheduled rescan when a new signature matches it.
func TestKeptUploadsAreRescanned(t *testing.T) {
	sigs := t.TempDir()
	if err := testenv.WriteSignatures(sigs); err != nil {
		t.Fatal(err)
	}
	c := start(t, func(cfg *config.Config) {
		cfg.KeepUploads = true
		cfg.Rescan.Schedule = "@every 1s"
		cfg.Engines = []config.Engine{{Name: "blocklist", Type: config.TypeBuiltin, Signatures: sigs, ReloadInterval: 100 * time.Millisecond}}
	}, Options{})
	data := testenv.Deterministic(t.Name(), 1000)
	code, b := c.do("POST", "/v1/scan?name=doc.bin", "application/octet-stream", bytes.NewReader(data))
	job := decodeJob(t, b)
	if code != 200 || job.Verdict != scan.Clean {
		t.Fatalf("first scan: %d %s", code, b)
	}
	sum := md5.Sum(data)
	os.WriteFile(filepath.Join(sigs, "new.hdb"), fmt.Appendf(nil, "%s:%d:Lazaret.Test.Doc\n", hex.EncodeToString(sum[:]), len(data)), 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, b := c.do("GET", "/v1/jobs/"+job.ID, "", nil)
		if j := decodeJob(t, b); j.Verdict == scan.Infected {
			if j.FirstSignature() != "Lazaret.Test.Doc.UNOFFICIAL" {
				t.Errorf("signature %q", j.FirstSignature())
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the kept upload was not rescanned to infected")
}

// TestQueuedUploadScannedInPlace: a queued upload over the memory spool is
// scanned from the blob that holds it, not copied to a spool file first,
// and the blob is gone once the job is done.
func TestQueuedUploadScannedInPlace(t *testing.T) {
	var dataDir string
	c := start(t, func(cfg *config.Config) {
		dataDir = cfg.DataDir
		cfg.Limits.MemorySpool = 64 << 10
		// Clean only when the path it is given lies in the blob folder.
		cfg.Engines = []config.Engine{{Name: "where", Type: config.TypeCommand, Version: "1", InfectedWhen: &config.InfectedWhen{ExitCodes: []int{1}},
			Command: []string{"/bin/sh", "-c", `case "$1" in */blobs/*) exit 0;; *) exit 3;; esac`, "sh", "{path}"}}}
	}, Options{})
	data := testenv.Deterministic("in-place", 256<<10)
	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"big.bin": data})
	if code != 202 {
		t.Fatalf("got %d %s", code, b)
	}
	done := c.waitDone(decodeJob(t, b).ID)
	if done.Verdict != scan.Clean || done.Size != int64(len(data)) {
		t.Errorf("got %+v; the engine was not given the blob itself", done)
	}
	if left, _ := os.ReadDir(filepath.Join(dataDir, "blobs")); len(left) != 0 {
		t.Errorf("blobs left after the job: %v", left)
	}
}

// TestServePrunesKeptUploads: a server started with keep_uploads prunes
// kept uploads older than keep_uploads_for at once, and keeps fresh ones.
func TestServePrunesKeptUploads(t *testing.T) {
	dataDir := t.TempDir()
	uploads := filepath.Join(dataDir, "uploads")
	os.MkdirAll(uploads, 0o700)
	old, fresh := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, k := range []string{old, fresh} {
		if err := os.WriteFile(filepath.Join(uploads, k), []byte(k), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(uploads, old), long, long)
	start(t, func(cfg *config.Config) {
		cfg.DataDir = dataDir
		cfg.KeepUploads, cfg.KeepUploadsFor = true, 24*time.Hour
	}, Options{})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(uploads, old)); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(uploads, fresh)); err != nil {
				t.Fatalf("the fresh upload was pruned too: %v", err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the old kept upload was not pruned")
}

// TestServePrunesReports: a server prunes the sandbox engines' reports not
// written for keep_reports_for when it starts, and a job whose report is
// gone then answers 410 report_gone for it. A report that an analyzer
// writes again (the same bytes, for another sample) counts as new and
// stays, for the older job that named it too.
func TestServePrunesReports(t *testing.T) {
	dataDir := t.TempDir()
	cfgWith := func(keepFor time.Duration) config.Config {
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.DataDir = dataDir
		cfg.Queue.AckWait = 2 * time.Second
		cfg.KeepReportsFor = keepFor
		// The report is the sample's first line, so that two samples
		// can make one report.
		cfg.Engines = []config.Engine{{Name: "analyzer", Type: config.TypeSandbox, Isolation: config.IsolationNone,
			Version: "1", Timeout: 10 * time.Second, Report: &config.SandboxReport{ContentType: "text/plain"},
			Command: []string{"/bin/sh", "-c", `head -n 1 "$1" > "$2"`, "sh", "{path}", "{report}"}}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	run := func(cfg config.Config) (*App, *client) {
		t.Helper()
		a, err := Start(context.Background(), cfg, Options{HTTP: true, Workers: true})
		if err != nil {
			t.Fatal(err)
		}
		return a, &client{t: t, base: "http://" + a.Addr()}
	}
	stop := func(a *App) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	scanned := func(c *client, data string) (scan.Job, string) {
		t.Helper()
		code, b := c.upload("/v1/scan", "file", map[string][]byte{"sample.txt": []byte(data)})
		j := decodeJob(t, b)
		if code != 200 || j.Verdict != scan.Clean || len(j.Engines) != 1 || j.Engines[0].Report == nil {
			t.Fatalf("scan: got %d %s, want a clean job with a report", code, b)
		}
		return j, filepath.Join(dataDir, "reports", j.Engines[0].Report.SHA256)
	}
	age := func(path string, d time.Duration) {
		t.Helper()
		when := time.Now().Add(-d)
		if err := os.Chtimes(path, when, when); err != nil {
			t.Fatal(err)
		}
	}

	// First, keeping reports forever: nothing is pruned while the
	// reports are made and aged.
	a, c := run(cfgWith(0))
	oldJob, oldReport := scanned(c, "old\n")
	reusedJob, reusedReport := scanned(c, "reused\n1\n")
	age(oldReport, 91*24*time.Hour)
	age(reusedReport, 91*24*time.Hour)
	start := time.Now()
	if again, p := scanned(c, "reused\n2\n"); again.Cached || p != reusedReport {
		t.Fatalf("got cached %t, report %s; want the analyzer run again, writing report %s", again.Cached, p, reusedReport)
	}
	if fi, err := os.Stat(reusedReport); err != nil || fi.ModTime().Before(start.Add(-time.Second)) {
		t.Fatalf("the report written again: %v, %v; want it kept, its modification time refreshed", fi, err)
	}
	stop(a)

	// Then with the default 90 days.
	a, c = run(cfgWith(config.Default().KeepReportsFor))
	defer stop(a)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(oldReport); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old report was not pruned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, b := c.do("GET", "/v1/jobs/"+oldJob.ID+"/report", "", nil)
	if code != http.StatusGone || !strings.Contains(string(b), `"code":"report_gone"`) {
		t.Errorf("the pruned report: got %d %s, want 410 report_gone", code, b)
	}
	if code, b := c.do("GET", "/v1/jobs/"+reusedJob.ID+"/report", "", nil); code != 200 || string(b) != "reused\n" {
		t.Errorf("the report written again: got %d %q, want 200 and the report", code, b)
	}
}
