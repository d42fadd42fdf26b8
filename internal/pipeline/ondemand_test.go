package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
)

// onDemand is a fakeEngine that runs only for jobs that name it.
type onDemand struct{ *fakeEngine }

func (onDemand) OnDemand() bool { return true }

func TestOnDemandEngines(t *testing.T) {
	report := &scan.Report{SHA256: strings.Repeat("0", 64), Size: 2, ContentType: "application/json"}
	analyzer := onDemand{eng("analyzer", func(context.Context, scan.Sample) (scan.Result, error) {
		return scan.Result{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: "Analyzer.Hit"}}, Report: report}, nil
	})}
	av := eng("av", clean)
	p, err := New(Config{Engines: []scan.Engine{av, analyzer}})
	if err != nil {
		t.Fatal(err)
	}

	// A job that names no engine: the on-demand one stays out, of the
	// scan and of the cache key.
	job, _ := p.Scan(context.Background(), Request{Body: strings.NewReader("x"), Size: -1})
	if job.Verdict != scan.Clean || len(job.Engines) != 1 || job.Engines[0].Name != "av" || analyzer.calls.Load() != 0 {
		t.Errorf("unnamed job: got %s by %+v, analyzer called %d times; want clean by av alone", job.Verdict, job.Engines, analyzer.calls.Load())
	}
	key, err := p.EnginesKey(context.Background())
	if want := scan.EnginesKey([]scan.EngineVersion{{Name: "av", Version: "1"}}); err != nil || key != want {
		t.Errorf("engines key: got %q, %v; want av's alone", key, err)
	}

	// A job that names it: it alone, its report recorded with its run.
	job, _ = p.Scan(context.Background(), Request{Body: strings.NewReader("x"), Size: -1, Source: scan.Source{Engine: "analyzer"}})
	if job.Verdict != scan.Infected || len(job.Engines) != 1 || job.Engines[0].Report != report || av.calls.Load() != 1 {
		t.Errorf("named job: got %s by %+v; want infected by the analyzer alone, with its report", job.Verdict, job.Engines)
	}

	// Only on-demand engines: an unnamed job is an error, never clean.
	p, err = New(Config{Engines: []scan.Engine{analyzer}})
	if err != nil {
		t.Fatal(err)
	}
	job, _ = p.Scan(context.Background(), Request{Body: strings.NewReader("x"), Size: -1})
	if job.Verdict != scan.Error || !strings.Contains(job.Error, "on_demand") {
		t.Errorf("no engine for an unnamed job: got %s (%q), want an error", job.Verdict, job.Error)
	}
}
