package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
)

type fakeQueue struct{ err error }

func (f fakeQueue) Stats(context.Context) (queue.Stats, error) {
	return queue.Stats{Pending: 3, InFlight: 2, Redelivered: 1}, f.err
}

type fakeEngines struct{}

func (fakeEngines) Status(context.Context) []scan.EngineStatus {
	t := time.Now().Add(-time.Hour)
	return []scan.EngineStatus{{Name: "clamav", Type: "clamd", Version: "ClamAV 1.4.6", Healthy: false, SignaturesUpdated: &t}}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	m := New(fakeQueue{}, fakeEngines{})
	m.ScanDone(&scan.Job{Verdict: scan.Infected, SHA256: "x", Size: 68,
		Engines: []scan.EngineRun{{Name: "clamav", Verdict: scan.Infected, DurationMS: 3}}}, 5*time.Millisecond)
	m.ScanDone(&scan.Job{Verdict: scan.Infected, SHA256: "x", Size: 68, Cached: true}, time.Millisecond)
	m.ScanDone(&scan.Job{Verdict: scan.Skipped, Reason: scan.ReasonTooLarge}, time.Millisecond)
	m.ObserveHTTP("POST /v1/scan", 200, time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`lazaret_scans_total{cached="false",reason="",verdict="infected"} 1`,
		`lazaret_scans_total{cached="true",reason="",verdict="infected"} 1`,
		`lazaret_scans_total{cached="false",reason="too_large",verdict="skipped"} 1`,
		`lazaret_engine_scans_total{engine="clamav",reason="",verdict="infected"} 1`,
		`lazaret_verdict_cache_total{result="hit"} 1`,
		`lazaret_verdict_cache_total{result="miss"} 1`,
		`lazaret_scanned_bytes_total 68`,
		`lazaret_http_requests_total{code="200",route="POST /v1/scan"} 1`,
		`lazaret_queue_depth{state="pending"} 3`,
		`lazaret_queue_depth{state="in_flight"} 2`,
		`lazaret_queue_redelivered 1`,
		`lazaret_queue_up 1`,
		`lazaret_engine_up{engine="clamav",type="clamd",version="ClamAV 1.4.6"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(out, `lazaret_engine_signature_age_seconds{engine="clamav"} 36`) {
		t.Error("missing the signature age (about 3600 s)")
	}
	if out := scrape(t, New(fakeQueue{err: errors.New("down")}, nil)); !strings.Contains(out, "lazaret_queue_up 0\n") {
		t.Error("queue down: lazaret_queue_up is not 0")
	}
}
