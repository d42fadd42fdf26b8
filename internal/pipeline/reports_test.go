package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// analyzer is an engine that writes a report about each sample into a
// blob.Dir, as the sandbox engine does, and finds nothing.
type analyzer struct {
	reports *blob.Dir
	calls   atomic.Int32
}

func (a *analyzer) Name() string                            { return "analyzer" }
func (a *analyzer) Type() string                            { return "sandbox" }
func (a *analyzer) Version(context.Context) (string, error) { return "1", nil }
func (a *analyzer) Ping(context.Context) error              { return nil }
func (a *analyzer) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	a.calls.Add(1)
	report := []byte(`{"sample":"` + s.SHA256 + `"}`)
	sum := sha256.Sum256(report)
	key := hex.EncodeToString(sum[:])
	if _, err := a.reports.Put(ctx, key, bytes.NewReader(report)); err != nil {
		return scan.Result{}, err
	}
	return scan.Result{Verdict: scan.Clean, Report: &scan.Report{SHA256: key, Size: int64(len(report)), ContentType: "application/json"}}, nil
}

// TestCachedVerdictKeepsItsReport: a cache hit refreshes the reports its
// verdict names, so that pruning by age keeps them while they are asked
// for; a verdict whose report is gone is a miss, and the analyzer runs
// again, rather than a new job naming a report no longer kept.
func TestCachedVerdictKeepsItsReport(t *testing.T) {
	reports, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &analyzer{reports: reports}
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{a}, Store: openStore(t), Reports: reports})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sample := []byte("an apk, say")
	scanOnce := func() *scan.Job {
		t.Helper()
		job, err := p.Scan(ctx, pipeline.Request{Name: "s.apk", Body: bytes.NewReader(sample), Size: -1})
		if err != nil || job.Verdict != scan.Clean || len(job.Engines) != 1 || job.Engines[0].Report == nil {
			t.Fatalf("scan: %v, %+v", err, job)
		}
		return job
	}

	first := scanOnce()
	key := first.Engines[0].Report.SHA256
	path, err := reports.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-100 * 24 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}

	// A hit: no analyzer run, and the report is young again.
	if job := scanOnce(); !job.Cached || a.calls.Load() != 1 {
		t.Fatalf("second scan: cached %v after %d analyzer runs, want a cache hit", job.Cached, a.calls.Load())
	}
	if fi, err := os.Stat(path); err != nil || time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("report after a cache hit: %v, modified %v; want refreshed", err, fi.ModTime())
	}

	// The report pruned: lookups by hash miss, and a scan runs the
	// analyzer again, which writes the report again.
	if err := reports.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(sample)
	if _, err := p.Lookup(ctx, hex.EncodeToString(sum[:])); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookup with the report gone: got %v, want not found", err)
	}
	if job := scanOnce(); job.Cached || a.calls.Load() != 2 {
		t.Errorf("scan with the report gone: cached %v after %d analyzer runs, want a new run", job.Cached, a.calls.Load())
	}
	if _, err := reports.Path(key); err != nil {
		t.Errorf("report after the new run: %v", err)
	}
}
