package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/worker"
)

// engine finds nothing, or fails while down is set.
type engine struct{ down atomic.Bool }

func (e *engine) Name() string                                { return "test" }
func (e *engine) Type() string                                { return "test" }
func (e *engine) Version(ctx context.Context) (string, error) { return "test 1", nil }
func (e *engine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	if e.down.Load() {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "engine down")
	}
	return scan.Result{Verdict: scan.Clean}, nil
}

// objects is an object store of one object whose reads and effects fail
// as told.
type objects struct {
	body             []byte
	versionID        string
	openErr, fxErr   error
	mu               sync.Mutex
	applied          []scan.Verdict // the verdicts Apply was given
	appliedVersionID string
}

func (o *objects) Open(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objstore.Info, error) {
	if o.openErr != nil {
		return nil, objstore.Info{}, fmt.Errorf("objstore: open %s/%s: %w", bucket, key, o.openErr)
	}
	info := objstore.Info{Bucket: bucket, Key: key, Size: int64(len(o.body)), ETag: etag, VersionID: o.versionID}
	return io.NopCloser(bytes.NewReader(o.body)), info, nil
}

func (o *objects) Apply(ctx context.Context, bucket, key, versionID string, job *scan.Job) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.applied = append(o.applied, job.Verdict)
	o.appliedVersionID = versionID
	if o.fxErr != nil {
		return nil, fmt.Errorf("objstore: tag %s/%s: %w", bucket, key, o.fxErr)
	}
	return []string{objstore.ActionTagged}, nil
}

// env is one test's store, pipeline and worker.
type env struct {
	jobs     *sqlite.Store
	engine   *engine
	objects  *objects
	w        *worker.Worker
	notified []string // job IDs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	jobs, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() })
	e := &env{jobs: jobs, engine: &engine{}, objects: &objects{body: []byte("hello")}}
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{e.engine}, Store: jobs})
	if err != nil {
		t.Fatal(err)
	}
	// No queue and no blobs: a worker that only runs the jobs it is
	// handed, as a sweep's does.
	e.w, err = worker.New(worker.Config{Jobs: jobs, Pipeline: p, Objects: e.objects,
		Notify: func(_ context.Context, j *scan.Job) error {
			if j.Status != scan.Done {
				t.Errorf("notified of job %s in status %s", j.ID, j.Status)
			}
			e.notified = append(e.notified, j.ID)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// queued stores a queued job for an object.
func (e *env) queued(t *testing.T, id string) *scan.Job {
	t.Helper()
	job := &scan.Job{ID: id, Status: scan.Queued, Name: "x.bin", Size: 5, CreatedAt: time.Now().UTC(),
		Source: scan.Source{Kind: "s3", Bucket: "b", Key: "x.bin", ETag: "0123456789abcdef0123456789abcdef"}}
	if err := e.jobs.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	return job
}

// The ways a job is run.
var runs = map[string]func(ctx context.Context, w *worker.Worker, job *scan.Job) error{
	"retry": func(ctx context.Context, w *worker.Worker, job *scan.Job) error { return w.Process(ctx, job, false) },
	"final": func(ctx context.Context, w *worker.Worker, job *scan.Job) error { return w.Process(ctx, job, true) },
	"once":  func(ctx context.Context, w *worker.Worker, job *scan.Job) error { return w.ProcessOnce(ctx, job, nil) },
}

// TestObject runs an S3 job through each way a job is run, with the
// object gone, changed or unreadable, the engine down and the effects
// failing: what the job ends as, and what is left to a retry.
func TestObject(t *testing.T) {
	type want struct {
		err      bool         // the run returns an error: the job is left queued
		verdict  scan.Verdict // else the stored verdict
		reason   scan.Reason
		applied  []scan.Verdict // the effects Apply was run with
		attempts int
	}
	gone := want{verdict: scan.Skipped, reason: scan.ReasonNotFound, attempts: 1}
	tests := []struct {
		name           string
		openErr, fxErr error
		engineDown     bool
		want           map[string]want // by run
	}{
		{"clean", nil, nil, false, map[string]want{
			"retry": {verdict: scan.Clean, applied: []scan.Verdict{scan.Clean}, attempts: 1},
			"final": {verdict: scan.Clean, applied: []scan.Verdict{scan.Clean}, attempts: 1},
			"once":  {verdict: scan.Clean, applied: []scan.Verdict{scan.Clean}, attempts: 1},
		}},
		{"gone", objstore.ErrNotFound, nil, false, map[string]want{"retry": gone, "final": gone, "once": gone}},
		{"changed", objstore.ErrChanged, nil, false, map[string]want{"retry": gone, "final": gone, "once": gone}},
		{"access denied", objstore.ErrAccessDenied, nil, false, map[string]want{
			"retry": {err: true},
			"final": {verdict: scan.Error, reason: scan.ReasonAccessDenied, attempts: 1},
			"once":  {verdict: scan.Error, reason: scan.ReasonAccessDenied, attempts: 1},
		}},
		{"unreadable", errors.New("connection refused"), nil, false, map[string]want{
			"retry": {err: true},
			// The last delivery ends the job; a one-shot pass leaves it
			// queued, for the next pass.
			"final": {verdict: scan.Error, reason: scan.ReasonIO, attempts: 1},
			"once":  {err: true},
		}},
		{"engine down", nil, nil, true, map[string]want{
			"retry": {err: true, attempts: 1},
			// The last delivery tags the object error; a one-shot pass
			// leaves it untagged, for the next pass.
			"final": {verdict: scan.Error, reason: scan.ReasonEngineError, applied: []scan.Verdict{scan.Error}, attempts: 1},
			"once":  {verdict: scan.Error, reason: scan.ReasonEngineError, attempts: 1},
		}},
		{"gone before the effects", nil, objstore.ErrNotFound, false, map[string]want{
			"retry": {err: true, applied: []scan.Verdict{scan.Clean}, attempts: 1},
			"once":  {verdict: scan.Skipped, reason: scan.ReasonNotFound, applied: []scan.Verdict{scan.Clean}, attempts: 1},
		}},
		{"effects denied", nil, objstore.ErrAccessDenied, false, map[string]want{
			"retry": {err: true, applied: []scan.Verdict{scan.Clean}, attempts: 1},
			"once":  {err: true, applied: []scan.Verdict{scan.Clean}, attempts: 1},
		}},
	}
	for _, tt := range tests {
		for _, name := range []string{"retry", "final", "once"} {
			want, ok := tt.want[name]
			if !ok {
				continue
			}
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				e := newEnv(t)
				e.objects.openErr, e.objects.fxErr = tt.openErr, tt.fxErr
				e.engine.down.Store(tt.engineDown)
				job := e.queued(t, "01JD6Q3K8M4Z7X2V9B1N5T0RCE")
				err := runs[name](t.Context(), e.w, job)
				if got := err != nil; got != want.err {
					t.Fatalf("run: error %v, want an error: %v", err, want.err)
				}
				stored, gerr := e.jobs.GetJob(t.Context(), job.ID)
				if gerr != nil {
					t.Fatal(gerr)
				}
				if want.err {
					if stored.Status != scan.Queued || len(e.notified) != 0 {
						t.Errorf("job %s %s, %d notifications; want it queued for a retry, none", stored.Status, stored.Verdict, len(e.notified))
					}
				} else {
					if stored.Status != scan.Done || stored.Verdict != want.verdict || stored.Reason != want.reason {
						t.Errorf("job %s %s %s, want done %s %s", stored.Status, stored.Verdict, stored.Reason, want.verdict, want.reason)
					}
					if !slices.Equal(e.notified, []string{job.ID}) {
						t.Errorf("notified %v, want %s once", e.notified, job.ID)
					}
				}
				if stored.Attempts != want.attempts {
					t.Errorf("attempts: got %d, want %d", stored.Attempts, want.attempts)
				}
				if !slices.Equal(e.objects.applied, want.applied) {
					t.Errorf("effects run for %v, want %v", e.objects.applied, want.applied)
				}
			})
		}
	}
}

// TestObjectPinsVersion: the effects act on the version that was read,
// and the job records it.
func TestObjectPinsVersion(t *testing.T) {
	e := newEnv(t)
	e.objects.versionID = "v2"
	job := e.queued(t, "01JD6Q3K8M4Z7X2V9B1N5T0RCE")
	if err := e.w.ProcessOnce(t.Context(), job, nil); err != nil {
		t.Fatal(err)
	}
	if e.objects.appliedVersionID != "v2" {
		t.Errorf("effects on version %q, want v2", e.objects.appliedVersionID)
	}
	stored, err := e.jobs.GetJob(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Source.VersionID != "v2" {
		t.Errorf("stored version %q, want v2", stored.Source.VersionID)
	}
}

// cancellingReader ends its context once it is read from, and fails as a
// read cut short by that would.
type cancellingReader struct {
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	c.cancel()
	return 0, context.Canceled
}

// TestOnceCutShort: a one-shot run that its context cuts short leaves the
// job queued, not stored with an error; a local file's job (a body the
// caller opened) has no effects.
func TestOnceCutShort(t *testing.T) {
	e := newEnv(t)
	job := &scan.Job{ID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Status: scan.Queued, Name: "a", Size: 5, CreatedAt: time.Now().UTC(),
		Source: scan.Source{Kind: "sweep", Path: "/tmp/a"}}
	if err := e.jobs.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := e.w.ProcessOnce(ctx, job, &cancellingReader{cancel: cancel})
	if err == nil {
		t.Fatal("cut short: no error")
	}
	stored, gerr := e.jobs.GetJob(t.Context(), job.ID)
	if gerr != nil {
		t.Fatal(gerr)
	}
	if stored.Status != scan.Queued || len(e.notified) != 0 {
		t.Errorf("cut short: job %s %s, %d notifications; want it queued, none", stored.Status, stored.Verdict, len(e.notified))
	}

	// Run again, to its end.
	if err := e.w.ProcessOnce(t.Context(), stored, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if stored.Status != scan.Done || stored.Verdict != scan.Clean || len(stored.Actions) != 0 || len(e.objects.applied) != 0 {
		t.Errorf("job %s %s, actions %v, effects %v; want done clean without effects", stored.Status, stored.Verdict, stored.Actions, e.objects.applied)
	}
}

// TestOnceConflict: a one-shot run of a job another run finished is told
// so, to count it.
func TestOnceConflict(t *testing.T) {
	e := newEnv(t)
	job := e.queued(t, "01JD6Q3K8M4Z7X2V9B1N5T0RCE")
	stale := *job
	if err := e.w.ProcessOnce(t.Context(), job, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.w.ProcessOnce(t.Context(), &stale, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second run of the job: error %v, want store.ErrConflict", err)
	}
	// A queue's delivery of it may be acknowledged.
	stale = *job
	stale.Status = scan.Queued
	if err := e.w.Process(t.Context(), &stale, false); err != nil {
		t.Errorf("a redelivery of a finished job: %v, want nil", err)
	}
}

func TestNew(t *testing.T) {
	e := newEnv(t)
	if _, err := worker.New(worker.Config{Jobs: e.jobs}); err == nil {
		t.Error("New without a pipeline: no error")
	}
	if err := e.w.Run(t.Context()); err == nil {
		t.Error("Run without a queue: no error")
	}
}

// TestUnscannableNotified: a job that ends as an error without a scan
// (its queued upload's sample gone, or nothing on this worker to read it
// with) is notified like any other finished job.
func TestUnscannableNotified(t *testing.T) {
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		blobs  worker.Blobs
		source scan.Source
		reason scan.Reason
	}{
		{"sample gone", blobs, scan.Source{Kind: "upload"}, scan.ReasonNotFound},
		{"no blob store", nil, scan.Source{Kind: "upload"}, scan.ReasonUnsupported},
		{"no object store", blobs, scan.Source{Kind: "s3", Bucket: "b", Key: "k"}, scan.ReasonUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{e.engine}, Store: e.jobs})
			if err != nil {
				t.Fatal(err)
			}
			var notified []scan.Verdict
			w, err := worker.New(worker.Config{Jobs: e.jobs, Pipeline: p, Blobs: tc.blobs,
				Notify: func(_ context.Context, j *scan.Job) error {
					notified = append(notified, j.Verdict)
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			job := &scan.Job{ID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Status: scan.Queued, Name: "a", Size: 5,
				CreatedAt: time.Now().UTC(), Source: tc.source}
			if err := e.jobs.CreateJob(t.Context(), job); err != nil {
				t.Fatal(err)
			}
			if err := w.Process(t.Context(), job, false); err != nil {
				t.Fatalf("Process: %v", err)
			}
			stored, err := e.jobs.GetJob(t.Context(), job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != scan.Done || stored.Verdict != scan.Error || stored.Reason != tc.reason {
				t.Errorf("job %s %s %s, want done error %s", stored.Status, stored.Verdict, stored.Reason, tc.reason)
			}
			if !slices.Equal(notified, []scan.Verdict{scan.Error}) {
				t.Errorf("notified %v, want the error once", notified)
			}
		})
	}
}
