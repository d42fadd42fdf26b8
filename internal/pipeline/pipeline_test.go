package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// fakeEngine is a unit-test stand-in for one failure mode at a time; the
// pipeline's behaviour with real engines and stores is tested in
// integration_test.go.
type fakeEngine struct {
	name    string
	version string
	scan    func(ctx context.Context, s scan.Sample) (scan.Result, error)
	calls   atomic.Int32
}

func (f *fakeEngine) Name() string { return f.name }
func (f *fakeEngine) Type() string { return "fake" }
func (f *fakeEngine) Version(context.Context) (string, error) {
	if f.version == "" {
		return "", errors.New("down")
	}
	return f.version, nil
}
func (f *fakeEngine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	f.calls.Add(1)
	return f.scan(ctx, s)
}

func clean(context.Context, scan.Sample) (scan.Result, error) {
	return scan.Result{Verdict: scan.Clean}, nil
}

func eng(name string, fn func(context.Context, scan.Sample) (scan.Result, error)) *fakeEngine {
	return &fakeEngine{name: name, version: "1", scan: fn}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no engines: got nil error")
	}
	if _, err := New(Config{Engines: []scan.Engine{eng("a", clean), eng("a", clean)}}); err == nil {
		t.Error("duplicate names: got nil error")
	}
}

func TestVerdicts(t *testing.T) {
	infected := func(context.Context, scan.Sample) (scan.Result, error) {
		return scan.Result{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: "Bad"}}}, nil
	}
	for _, tc := range []struct {
		name        string
		engines     []scan.Engine
		timeout     time.Duration
		wantVerdict scan.Verdict
		wantReason  scan.Reason
	}{
		{"all clean", []scan.Engine{eng("a", clean), eng("b", clean)}, 0, scan.Clean, ""},
		{"one infected", []scan.Engine{eng("a", clean), eng("b", infected)}, 0, scan.Infected, ""},
		{"error reply", []scan.Engine{eng("a", func(context.Context, scan.Sample) (scan.Result, error) {
			return scan.Result{}, errors.New("clamd said ERROR")
		})}, 0, scan.Error, scan.ReasonEngineError},
		{"infected wins over error", []scan.Engine{eng("a", infected), eng("b", func(context.Context, scan.Sample) (scan.Result, error) {
			return scan.Result{}, errors.New("boom")
		})}, 0, scan.Infected, ""},
		{"empty result", []scan.Engine{eng("a", func(context.Context, scan.Sample) (scan.Result, error) {
			return scan.Result{}, nil
		})}, 0, scan.Error, scan.ReasonEngineError},
		{"panic", []scan.Engine{eng("a", func(context.Context, scan.Sample) (scan.Result, error) {
			panic("engine bug")
		})}, 0, scan.Error, scan.ReasonEngineError},
		{"skipped engine", []scan.Engine{eng("a", clean), eng("b", func(context.Context, scan.Sample) (scan.Result, error) {
			return scan.Result{}, scan.Skipf(scan.ReasonTooLarge, "INSTREAM size limit exceeded")
		})}, 0, scan.Skipped, scan.ReasonTooLarge},
		{"clean after its deadline", []scan.Engine{eng("a", func(ctx context.Context, s scan.Sample) (scan.Result, error) {
			<-ctx.Done()
			return scan.Result{Verdict: scan.Clean}, nil
		})}, 20 * time.Millisecond, scan.Error, scan.ReasonTimeout},
		{"timeout error", []scan.Engine{eng("a", func(ctx context.Context, s scan.Sample) (scan.Result, error) {
			<-ctx.Done()
			return scan.Result{}, ctx.Err()
		})}, 20 * time.Millisecond, scan.Error, scan.ReasonTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Config{Engines: tc.engines, EngineTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			job, err := p.Scan(context.Background(), Request{Name: "x", Body: strings.NewReader("hello"), Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			if job.Verdict != tc.wantVerdict || job.Reason != tc.wantReason {
				t.Errorf("got %s/%s, want %s/%s (error %q)", job.Verdict, job.Reason, tc.wantVerdict, tc.wantReason, job.Error)
			}
			if job.Status != scan.Done || job.FinishedAt == nil {
				t.Errorf("got status %s finished %v, want done with a time", job.Status, job.FinishedAt)
			}
			if len(job.Engines) != len(tc.engines) {
				t.Errorf("got %d engine runs, want %d", len(job.Engines), len(tc.engines))
			}
			if job.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" || job.Size != 5 {
				t.Errorf("got sha256 %s size %d", job.SHA256, job.Size)
			}
		})
	}
}

type failingReader struct{ after int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), f.after)
	f.after -= n
	return n, nil
}

type mustNotRead struct{ t *testing.T }

func (m mustNotRead) Read([]byte) (int, error) {
	m.t.Error("body was read")
	return 0, io.EOF
}

func TestInputFailures(t *testing.T) {
	for _, tc := range []struct {
		name        string
		req         func(t *testing.T) Request
		wantVerdict scan.Verdict
		wantReason  scan.Reason
	}{
		{"known size over limit is not read", func(t *testing.T) Request {
			return Request{Body: mustNotRead{t}, Size: 1 << 20}
		}, scan.Skipped, scan.ReasonTooLarge},
		{"stream over limit", func(t *testing.T) Request {
			return Request{Body: bytes.NewReader(make([]byte, 5000)), Size: -1}
		}, scan.Skipped, scan.ReasonTooLarge},
		{"cut-off stream", func(t *testing.T) Request {
			return Request{Body: &failingReader{after: 100}, Size: -1}
		}, scan.Error, scan.ReasonIO},
		{"missing file", func(t *testing.T) Request {
			return Request{Body: errorReader{fs.ErrNotExist}, Size: -1}
		}, scan.Error, scan.ReasonNotFound},
		{"permission denied", func(t *testing.T) Request {
			return Request{Body: errorReader{fs.ErrPermission}, Size: -1}
		}, scan.Error, scan.ReasonAccessDenied},
		{"no body", func(t *testing.T) Request { return Request{Size: -1} }, scan.Error, scan.ReasonIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := eng("a", clean)
			p, err := New(Config{Engines: []scan.Engine{e}, MaxSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			job, _ := p.Scan(context.Background(), tc.req(t))
			if job.Verdict != tc.wantVerdict || job.Reason != tc.wantReason {
				t.Errorf("got %s/%s, want %s/%s", job.Verdict, job.Reason, tc.wantVerdict, tc.wantReason)
			}
			if n := e.calls.Load(); n != 0 {
				t.Errorf("engine called %d times, want 0", n)
			}
		})
	}
}

type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

func TestEffects(t *testing.T) {
	infected := func(context.Context, scan.Sample) (scan.Result, error) {
		return scan.Result{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: "Bad"}}}, nil
	}
	p, err := New(Config{Engines: []scan.Engine{eng("a", infected)}})
	if err != nil {
		t.Fatal(err)
	}
	var saw scan.Verdict
	job, err := p.Scan(context.Background(), Request{Body: strings.NewReader("x"), Size: -1,
		Effects: func(ctx context.Context, j *scan.Job) ([]string, error) {
			saw = j.Verdict
			return []string{"tagged", "deleted"}, nil
		}})
	if err != nil || saw != scan.Infected || strings.Join(job.Actions, ",") != "tagged,deleted" {
		t.Errorf("got %v, saw %s, actions %v", err, saw, job.Actions)
	}
	boom := errors.New("s3 down")
	job, err = p.Scan(context.Background(), Request{Body: strings.NewReader("x"), Size: -1,
		Effects: func(ctx context.Context, j *scan.Job) ([]string, error) { return []string{"tagged"}, boom }})
	if !errors.Is(err, boom) || job.Verdict != scan.Infected || !strings.Contains(job.Error, "s3 down") {
		t.Errorf("failing effects: got %v, job %+v", err, job)
	}
}
