package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/server"
	"github.com/lazaret/lazaret/internal/testenv"
)

// api is a client of a server started in-process.
type api struct {
	t    *testing.T
	base string
}

func (c *api) get(path string) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// upload posts one file as the multipart field named field.
func (c *api) upload(path, field, name string, data []byte) (int, []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile(field, name)
	w.Write(data)
	mw.Close()
	resp, err := http.Post(c.base+path, mw.FormDataContentType(), &buf)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *api) job(id string) scan.Job {
	c.t.Helper()
	resp, b := c.get("/v1/jobs/" + id)
	var j scan.Job
	if err := json.Unmarshal(b, &j); err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET /v1/jobs/%s: %d %s", id, resp.StatusCode, b)
	}
	return j
}

// menagerie submits data to engine as menagerie's clients do, waits on
// /result/{id} until the job is no longer running, and returns the
// result and the job.
func (c *api) menagerie(engine, name string, data []byte) (map[string]string, scan.Job) {
	c.t.Helper()
	code, b := c.upload("/"+engine+"/upload", "upload", name, data)
	var up struct {
		JobID string `json:"jobid"`
	}
	if err := json.Unmarshal(b, &up); err != nil || code != http.StatusOK || up.JobID == "" {
		c.t.Fatalf("POST /%s/upload: %d %s", engine, code, b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, b := c.get("/result/" + up.JobID)
		var res map[string]string
		if err := json.Unmarshal(b, &res); err != nil || resp.StatusCode != http.StatusOK {
			c.t.Fatalf("GET /result/%s: %d %s", up.JobID, resp.StatusCode, b)
		}
		if res["status"] != "Running" {
			return res, c.job(up.JobID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("job %s still running", up.JobID)
	return nil, scan.Job{}
}

// TestServeEndToEnd runs `lazaret serve` in-process with a builtin engine
// and an on-demand analyzer, and goes through menagerie's routes and the
// report route as a client would.
func TestServeEndToEnd(t *testing.T) {
	requireBwrap(t)
	script, dir := analyzer(t)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Queue.AckWait = 5 * time.Second
	cfg.Queue.MaxDeliveries = 1 // the first failure is the verdict
	cfg.Engines = []config.Engine{
		{Name: "builtin", Type: config.TypeBuiltin},
		{
			Name: "analyzer", Type: config.TypeSandbox,
			Command: []string{"/bin/bash", script, "{path}"}, ROBinds: []string{dir},
			Timeout: 3 * time.Second, OnDemand: true,
			Mountpoint: "/var/data", InputFilename: "sample.apk",
			Report: &config.SandboxReport{SignatureField: "signature", MaxSize: 4096},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := server.Start(t.Context(), cfg, server.Options{HTTP: true, Workers: true, Logger: testenv.Logger(t, slog.LevelWarn)})
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
	c := &api{t: t, base: "http://" + a.Addr()}

	t.Run("engines", func(t *testing.T) {
		_, b := c.get("/v1/engines")
		var es []scan.EngineStatus
		if err := json.Unmarshal(b, &es); err != nil || len(es) != 2 || es[1].Type != "sandbox" || !es[1].Healthy {
			t.Errorf("got engines %s, want the analyzer healthy", b)
		}
	})

	var infectedReport []byte
	t.Run("infected sample: verdict and report", func(t *testing.T) {
		res, j := c.menagerie("analyzer", "evil.apk", []byte("EVIL\n"))
		if res["status"] != "Success" || res["summary"] != "infected: Test.Evil.One" || res["link"] != "/link/"+j.ID {
			t.Errorf("got result %v", res)
		}
		if j.Verdict != scan.Infected || len(j.Engines) != 1 || j.Engines[0].Name != "analyzer" || j.Engines[0].Report == nil {
			t.Fatalf("got job %+v, want infected by the analyzer alone, with a report", j)
		}
		resp, b := c.get("/v1/jobs/" + j.ID + "/report")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET report: %d %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("got Content-Type %q, want application/json", ct)
		}
		if cd, want := resp.Header.Get("Content-Disposition"), `attachment; filename=`+j.ID+`-analyzer.json`; cd != want {
			t.Errorf("got Content-Disposition %q, want %q", cd, want)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("got headers %v, want nosniff and a sandboxing CSP", resp.Header)
		}
		var rep map[string]any
		if err := json.Unmarshal(b, &rep); err != nil || rep["verdict"] != "infected" || rep["name"] != "evil.apk" || rep["size"] != float64(5) {
			t.Errorf("got report %s (%v), want the analyzer's JSON for evil.apk", b, err)
		}
		if int64(len(b)) != j.Engines[0].Report.Size {
			t.Errorf("got %d bytes, the job says %d", len(b), j.Engines[0].Report.Size)
		}
		// Kept by content in the data folder.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "reports", j.Engines[0].Report.SHA256)); err != nil {
			t.Errorf("report not kept by SHA-256: %v", err)
		}
		// Menagerie's link is the result file: the report.
		if resp, lb := c.get("/link/" + j.ID); resp.StatusCode != http.StatusOK || !bytes.Equal(lb, b) {
			t.Errorf("GET /link: %d %s, want the report", resp.StatusCode, lb)
		}
		// Another engine's report: there is none.
		if resp, _ := c.get("/v1/jobs/" + j.ID + "/report?engine=builtin"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("report of builtin: got %d, want 404", resp.StatusCode)
		}
		infectedReport = b
	})

	t.Run("the same content again is answered from the cache, report included", func(t *testing.T) {
		_, j := c.menagerie("analyzer", "evil.apk", []byte("EVIL\n"))
		if !j.Cached || j.Verdict != scan.Infected {
			t.Fatalf("got cached %t, verdict %s; want a cached infected verdict", j.Cached, j.Verdict)
		}
		if resp, b := c.get("/v1/jobs/" + j.ID + "/report"); resp.StatusCode != http.StatusOK || !bytes.Equal(b, infectedReport) {
			t.Errorf("cached job's report: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("an on-demand analyzer stays out of other scans", func(t *testing.T) {
		code, b := c.upload("/v1/scan", "file", "hello.txt", []byte("EVIL\n"))
		var j scan.Job
		if err := json.Unmarshal(b, &j); err != nil || code != http.StatusOK {
			t.Fatalf("POST /v1/scan: %d %s", code, b)
		}
		if j.Verdict != scan.Clean || len(j.Engines) != 1 || j.Engines[0].Name != "builtin" {
			t.Errorf("got %s by %+v, want clean by builtin alone", j.Verdict, j.Engines)
		}
		resp, b := c.get("/v1/jobs/" + j.ID + "/report")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `"no_report"`) {
			t.Errorf("report of a job without one: %d %s, want 404 no_report", resp.StatusCode, b)
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name    string
		sample  string
		status  string
		verdict scan.Verdict
		reason  scan.Reason
		detail  string
		report  map[string]any // members the report must have
	}{
		{name: "clean", sample: "hello", status: "Success", verdict: scan.Clean, report: map[string]any{"verdict": "clean"}},
		{name: "timeout", sample: "SLEEP 30", status: "Failed", verdict: scan.Error, reason: scan.ReasonTimeout, detail: "timed out"},
		{name: "crash", sample: "CRASH", status: "Failed", verdict: scan.Error, reason: scan.ReasonEngineError, detail: "signal 11"},
		{name: "report over the limit", sample: "BIGREPORT 5000", status: "Failed", verdict: scan.Error, reason: scan.ReasonEngineError, detail: "over report.max_size"},
		{name: "no network", sample: fmt.Sprintf("NET %d", ln.Addr().(*net.TCPAddr).Port), status: "Success", verdict: scan.Clean,
			report: map[string]any{"network": "refused"}},
		{name: "read-only sample", sample: "WRITE", status: "Success", verdict: scan.Clean, report: map[string]any{"sample_write": "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, j := c.menagerie("analyzer", "sample.bin", []byte(tc.sample+"\n"))
			if res["status"] != tc.status || j.Verdict != tc.verdict || j.Reason != tc.reason {
				t.Fatalf("got %s, %s/%q (%s), want %s, %s/%q", res["status"], j.Verdict, j.Reason, j.Error, tc.status, tc.verdict, tc.reason)
			}
			if !strings.Contains(j.Error, tc.detail) {
				t.Errorf("got error %q, want it to contain %q", j.Error, tc.detail)
			}
			resp, b := c.get("/v1/jobs/" + j.ID + "/report")
			if tc.report == nil {
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("failed job's report: got %d %s, want 404", resp.StatusCode, b)
				}
				return
			}
			var rep map[string]any
			if err := json.Unmarshal(b, &rep); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET report: %d %s", resp.StatusCode, b)
			}
			for k, v := range tc.report {
				if rep[k] != v {
					t.Errorf("report %s: got %v, want %v", k, rep[k], v)
				}
			}
		})
	}
}
