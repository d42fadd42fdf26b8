// Package worker runs queued jobs: it takes job IDs from the queue, reads
// each job's bytes from the blob store, runs them through the pipeline and
// acknowledges the message only after the result is stored. A worker that
// dies mid-job leaves its message unacknowledged, so the queue delivers it
// again; the store's compare-and-set makes the second run store one
// result.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Consumer is the queue side a worker needs.
type Consumer interface {
	Consume(ctx context.Context, h queue.Handler, opts queue.ConsumeOptions) error
}

// Jobs is the store side a worker needs.
type Jobs interface {
	GetJob(ctx context.Context, id string) (*scan.Job, error)
	UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error
}

// Blobs holds the queued samples.
type Blobs interface {
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// Scanner is the pipeline.
type Scanner interface {
	Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error)
}

// Config configures a Worker.
type Config struct {
	Queue    Consumer
	Jobs     Jobs
	Blobs    Blobs
	Pipeline Scanner
	// Concurrency is how many jobs run at once; 0 means 4.
	Concurrency int
	// SoftStop is how long running jobs may finish after Run's context
	// ends; 0 means the queue's default.
	SoftStop time.Duration
	Logger   *slog.Logger
}

// Worker consumes the job queue.
type Worker struct {
	cfg Config
	log *slog.Logger
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Queue == nil || cfg.Jobs == nil || cfg.Blobs == nil || cfg.Pipeline == nil {
		return nil, errors.New("worker: queue, jobs, blobs and pipeline are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	w := &Worker{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

// Run consumes jobs until ctx ends, then lets running jobs finish (see
// Config.SoftStop) and returns.
func (w *Worker) Run(ctx context.Context) error {
	return w.cfg.Queue.Consume(ctx, w.Handle, queue.ConsumeOptions{Concurrency: w.cfg.Concurrency, SoftStop: w.cfg.SoftStop})
}

// Handle runs one delivery. It is exported for tests that drive a worker
// without a broker.
func (w *Worker) Handle(ctx context.Context, d queue.Delivery) {
	m := d.Message()
	log := w.log.With("job", m.JobID, "attempt", m.Attempt)
	if err := w.handle(ctx, m); err != nil {
		switch {
		case errors.Is(err, errGone):
			log.LogAttrs(ctx, slog.LevelWarn, "job dropped", slog.String("reason", err.Error()))
			d.Term(ctx, err.Error())
		default:
			log.LogAttrs(ctx, slog.LevelWarn, "job will be retried", slog.String("error", err.Error()))
			d.Nak(ctx, 0)
		}
		return
	}
	if err := d.Ack(ctx); err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "ack failed; the job may run again", slog.String("error", err.Error()))
	}
}

// errGone marks a message whose job does not exist: nothing to retry.
var errGone = errors.New("no such job")

func (w *Worker) handle(ctx context.Context, m queue.Message) error {
	job, err := w.cfg.Jobs.GetJob(ctx, m.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", errGone, m.JobID)
	}
	if err != nil {
		return fmt.Errorf("worker: get job: %w", err)
	}
	if job.Status == scan.Done {
		// Another delivery already finished it.
		w.cfg.Blobs.Delete(ctx, job.ID)
		return nil
	}
	body, err := w.cfg.Blobs.Open(ctx, job.ID)
	if errors.Is(err, blob.ErrNotFound) {
		return w.fail(ctx, job, scan.ReasonNotFound, "the job's sample is no longer stored")
	}
	if err != nil {
		return fmt.Errorf("worker: open sample: %w", err)
	}
	defer body.Close()
	_, err = w.cfg.Pipeline.Scan(ctx, pipeline.Request{
		Job: job, Name: job.Name, Body: body, Size: job.Size, Source: job.Source,
		RequeueOnError: !m.Final,
	})
	switch {
	case err == nil:
		w.cfg.Blobs.Delete(context.WithoutCancel(ctx), job.ID)
		return nil
	case errors.Is(err, store.ErrConflict):
		// Someone else moved the job on: done means a presumed-dead
		// worker finished after all, anything else is theirs to finish.
		if cur, gerr := w.cfg.Jobs.GetJob(ctx, job.ID); gerr == nil && cur.Status == scan.Done {
			return nil
		}
		return fmt.Errorf("worker: job changed under us: %w", err)
	}
	return fmt.Errorf("worker: %w", err)
}

// fail closes a job that cannot be scanned as an error.
func (w *Worker) fail(ctx context.Context, job *scan.Job, reason scan.Reason, msg string) error {
	from := job.Status
	fin := time.Now().UTC()
	job.Status, job.Verdict, job.Reason, job.Error, job.FinishedAt = scan.Done, scan.Error, reason, msg, &fin
	if err := w.cfg.Jobs.UpdateJob(ctx, job, from); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("worker: record failure: %w", err)
	}
	return nil
}
