package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
	"github.com/lazaret/lazaret/internal/worker"
)

// countingEngine finds nothing and counts its scans.
type countingEngine struct{ scans atomic.Int64 }

func (e *countingEngine) Name() string                                { return "test" }
func (e *countingEngine) Type() string                                { return "test" }
func (e *countingEngine) Version(ctx context.Context) (string, error) { return "test 1", nil }
func (e *countingEngine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	e.scans.Add(1)
	return scan.Result{Verdict: scan.Clean}, nil
}

// delivery is a queue.Delivery that records its settlements.
type delivery struct {
	m       queue.Message
	settled []string
}

func (d *delivery) Message() queue.Message { return d.m }
func (d *delivery) Ack(context.Context) error {
	d.settled = append(d.settled, "ack")
	return nil
}
func (d *delivery) Nak(context.Context, time.Duration) error {
	d.settled = append(d.settled, "nak")
	return nil
}
func (d *delivery) Term(context.Context, string) error {
	d.settled = append(d.settled, "term")
	return nil
}
func (d *delivery) InProgress(context.Context) error { return nil }

// failingUpdates is a job store whose updates fail.
type failingUpdates struct{ worker.Jobs }

func (failingUpdates) UpdateJob(context.Context, *scan.Job, scan.Status) error {
	return errors.New("store: database is locked")
}

// TestAbandoned: an abandoned delivery (the worker of the job's final
// attempt died) ends a queued or running job as error with its reason,
// without scanning it, notifies it once and acknowledges; a done job is
// left as it is and the delivery acknowledged. When the end cannot be
// recorded or notified, the delivery is Nak'ed, to come again.
func TestAbandoned(t *testing.T) {
	const id = "01JD6Q3K8M4Z7X2V9B1N5T0RCE"
	finished := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		job       scan.Job
		jobs      func(worker.Jobs) worker.Jobs
		notifyErr error
		settled   string
		want      scan.Job // the stored job's status, verdict, reason, attempts
		notified  int
	}{
		{name: "queued", job: scan.Job{Status: scan.Queued},
			settled: "ack", want: scan.Job{Status: scan.Done, Verdict: scan.Error, Reason: scan.ReasonEngineError}, notified: 1},
		{name: "running", job: scan.Job{Status: scan.Running, Attempts: 3},
			settled: "ack", want: scan.Job{Status: scan.Done, Verdict: scan.Error, Reason: scan.ReasonEngineError, Attempts: 3}, notified: 1},
		{name: "done", job: scan.Job{Status: scan.Done, Verdict: scan.Clean, Attempts: 2, FinishedAt: &finished},
			settled: "ack", want: scan.Job{Status: scan.Done, Verdict: scan.Clean, Attempts: 2}},
		{name: "not recorded", job: scan.Job{Status: scan.Running, Attempts: 3}, jobs: func(j worker.Jobs) worker.Jobs { return failingUpdates{j} },
			settled: "nak", want: scan.Job{Status: scan.Running, Attempts: 3}},
		{name: "not notified", job: scan.Job{Status: scan.Running, Attempts: 3}, notifyErr: errors.New("outbox: write failed"),
			settled: "nak", want: scan.Job{Status: scan.Done, Verdict: scan.Error, Reason: scan.ReasonEngineError, Attempts: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			eng := &countingEngine{}
			p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			var jobs worker.Jobs = store
			if tt.jobs != nil {
				jobs = tt.jobs(store)
			}
			var notified []scan.Job
			w, err := worker.New(worker.Config{Jobs: jobs, Pipeline: p, Objects: &objects{body: []byte("hello")},
				Notify: func(_ context.Context, j *scan.Job) error {
					notified = append(notified, *j)
					return tt.notifyErr
				}})
			if err != nil {
				t.Fatal(err)
			}
			job := tt.job
			job.ID, job.Name, job.Size, job.CreatedAt = id, "x.bin", 5, time.Now().UTC()
			job.Source = scan.Source{Kind: "s3", Bucket: "b", Key: "x.bin", ETag: "0123456789abcdef0123456789abcdef"}
			if err := store.CreateJob(t.Context(), &job); err != nil {
				t.Fatal(err)
			}

			d := &delivery{m: queue.Message{JobID: id, Attempt: 3, Abandoned: true}}
			w.Handle(t.Context(), d)

			if !slices.Equal(d.settled, []string{tt.settled}) {
				t.Errorf("settled %v, want [%s]", d.settled, tt.settled)
			}
			if n := eng.scans.Load(); n != 0 {
				t.Errorf("scanned %d times, want none", n)
			}
			stored, err := store.GetJob(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != tt.want.Status || stored.Verdict != tt.want.Verdict || stored.Reason != tt.want.Reason || stored.Attempts != tt.want.Attempts {
				t.Errorf("stored %s %s %q after %d attempts, want %s %s %q after %d",
					stored.Status, stored.Verdict, stored.Reason, stored.Attempts, tt.want.Status, tt.want.Verdict, tt.want.Reason, tt.want.Attempts)
			}
			switch {
			case tt.job.Status == scan.Done:
				if stored.FinishedAt == nil || !stored.FinishedAt.Equal(finished) || stored.Error != "" {
					t.Errorf("done job changed: finished %v, error %q", stored.FinishedAt, stored.Error)
				}
			case stored.Status == scan.Done:
				if want := "no verdict after 2 deliveries"; !strings.Contains(stored.Error, want) || stored.FinishedAt == nil {
					t.Errorf("error %q, finished %v; want an error that says %q, and a finish time", stored.Error, stored.FinishedAt, want)
				}
			}
			if tt.notified > 0 && (len(notified) != tt.notified || notified[0].Verdict != scan.Error || notified[0].Reason != scan.ReasonEngineError) {
				t.Errorf("notified %d times (%v); want %d, with the error verdict", len(notified), verdicts(notified), tt.notified)
			}
			if tt.settled == "nak" && tt.notifyErr == nil && len(notified) != 0 {
				t.Errorf("notified %d times of a job not recorded, want none", len(notified))
			}
		})
	}
}

// verdicts lists the verdicts of jobs, for failure messages.
func verdicts(jobs []scan.Job) []string {
	var v []string
	for _, j := range jobs {
		v = append(v, fmt.Sprintf("%s %s", j.Verdict, j.Reason))
	}
	return v
}

// TestDiedOnFinalAttempt: a job whose worker process dies on every
// attempt, the final one included (a sample that kills it), ends as error
// with its reason on the queue's abandoned delivery, without a scan, and
// is notified once; its message is then gone. Each "process" is a queue
// connection of its own that takes the job, marks it running as the
// pipeline does, and is closed holding it.
func TestDiedOnFinalAttempt(t *testing.T) {
	r := queue.Redelivery{AckWait: time.Second, MaxDeliver: 2, Backoff: []time.Duration{50 * time.Millisecond}}
	run := time.Now().UnixNano()
	for qname, open := range finalQueues {
		t.Run(qname, func(t *testing.T) {
			name := fmt.Sprintf("LZDIED_%d_%s", run, qname)
			jobs, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { jobs.Close() })
			job := &scan.Job{ID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Status: scan.Queued, Name: "x.bin", Size: 5, CreatedAt: time.Now().UTC(),
				Source: scan.Source{Kind: "s3", Bucket: "b", Key: "x.bin", ETag: "0123456789abcdef0123456789abcdef"}}
			if err := jobs.CreateJob(t.Context(), job); err != nil {
				t.Fatal(err)
			}
			q := open(t, name, r)
			if err := q.Publish(t.Context(), queue.Message{JobID: job.ID}); err != nil {
				t.Fatal(err)
			}

			// die takes the next delivery in a process of its own, starts
			// the job and dies.
			die := func(want queue.Message) {
				t.Helper()
				victim := open(t, name, r)
				got := make(chan queue.Message, 1)
				done := make(chan error, 1)
				go func() {
					done <- victim.Consume(context.Background(), func(ctx context.Context, d queue.Delivery) {
						if j, err := jobs.GetJob(ctx, d.Message().JobID); err == nil {
							from := j.Status
							j.Status = scan.Running
							j.Attempts++
							if err := jobs.UpdateJob(ctx, j, from); err != nil {
								t.Errorf("start job: %v", err)
							}
						}
						got <- d.Message()
						<-ctx.Done()
					}, queue.ConsumeOptions{SoftStop: -1})
				}()
				select {
				case m := <-got:
					if m != want {
						t.Errorf("victim got %+v, want %+v", m, want)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("victim got nothing")
				}
				victim.Close() // the process dies: its connection closes
				if err := <-done; !errors.Is(err, queue.ErrClosed) {
					t.Errorf("victim's Consume: got %v, want %v", err, queue.ErrClosed)
				}
			}
			die(queue.Message{JobID: job.ID, Attempt: 1})
			die(queue.Message{JobID: job.ID, Attempt: 2, Final: true})

			eng := &countingEngine{}
			p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: jobs})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var notified []scan.Job
			w, err := worker.New(worker.Config{Queue: q, Jobs: jobs, Pipeline: p, Objects: &objects{body: []byte("hello")},
				Concurrency: 1, SoftStop: -1, Logger: testenv.Logger(t, slog.LevelWarn),
				Notify: func(_ context.Context, j *scan.Job) error {
					mu.Lock()
					defer mu.Unlock()
					notified = append(notified, *j)
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			wctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(wctx) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()

			deadline := time.Now().Add(20 * time.Second)
			var stored *scan.Job
			for {
				if stored, err = jobs.GetJob(t.Context(), job.ID); err != nil {
					t.Fatal(err)
				}
				if stored.Status == scan.Done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("job still %s after %d attempts (error %q); want done with an error verdict", stored.Status, stored.Attempts, stored.Error)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if stored.Verdict != scan.Error || stored.Reason != scan.ReasonEngineError || stored.Attempts != 2 || !strings.Contains(stored.Error, "no verdict after 2 deliveries") {
				t.Errorf("job done %s %q after %d attempts, error %q; want error engine_error after 2, no verdict after 2 deliveries",
					stored.Verdict, stored.Reason, stored.Attempts, stored.Error)
			}
			if n := eng.scans.Load(); n != 0 {
				t.Errorf("scanned %d times, want none", n)
			}
			// The message is acknowledged: the queue empties and nothing
			// more comes.
			deadline = time.Now().Add(10 * time.Second)
			for {
				st, err := q.Stats(t.Context())
				if err == nil && st.Depth() == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("queue stats %+v, %v; want it empty", st, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * r.AckWait)
			mu.Lock()
			defer mu.Unlock()
			if len(notified) != 1 || notified[0].Verdict != scan.Error {
				t.Errorf("notified %d times (%v); want once, with the error verdict", len(notified), verdicts(notified))
			}
		})
	}
}
