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
	"github.com/lazaret/lazaret/internal/objstore"
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
	CreateJob(ctx context.Context, job *scan.Job) error
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

// Objects reads S3 objects and acts on their verdicts.
type Objects interface {
	Open(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objstore.Info, error)
	Apply(ctx context.Context, bucket, key, versionID string, job *scan.Job) ([]string, error)
}

// Config configures a Worker.
type Config struct {
	Queue    Consumer
	Jobs     Jobs
	Blobs    Blobs
	Pipeline Scanner
	// Objects serves jobs from buckets (Source.Kind "s3"); without it
	// they end as errors.
	Objects Objects
	// Notify, if set, is told about every finished job before its
	// message is acknowledged; an error has the message delivered
	// again, so it must be idempotent (webhook delivery IDs are stable
	// per job).
	Notify func(ctx context.Context, job *scan.Job) error
	// Keep, if set, keeps uploaded samples for rescans.
	Keep pipeline.Keeper
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
	return w.Process(ctx, job, m.Final)
}

// Process runs one job to its end: scan, effects, store, notify. The job
// is a stored one (queued, running after a lost worker, or done when only
// the tail is left), or a new one not stored yet (status scan.StatusNew)
// that a broker delivery stands for. Final says this is the last attempt:
// an error verdict is then stored as the result instead of retried. A nil
// error means the caller may acknowledge its message; any other error
// means it must be delivered again (pipeline.ErrRequeued: the job went
// back to queued with its error noted).
func (w *Worker) Process(ctx context.Context, job *scan.Job, final bool) error {
	m := queue.Message{JobID: job.ID, Final: final}
	if job.Status == scan.Done {
		// Another delivery finished it, or this one did and then failed
		// to notify or to acknowledge: finish the tail again (both are
		// idempotent).
		if job.Source.Kind != "s3" {
			w.cfg.Blobs.Delete(ctx, job.ID)
		}
		return w.notify(ctx, job)
	}
	req := pipeline.Request{Job: job, Name: job.Name, Size: job.Size, Source: job.Source, RequeueOnError: !m.Final}
	if job.Source.Kind == "s3" {
		src := job.Source
		if w.cfg.Objects == nil {
			return w.finish(ctx, job, scan.Error, scan.ReasonUnsupported, "bucket scanning is not configured on this worker")
		}
		body, _, err := w.cfg.Objects.Open(ctx, src.Bucket, src.Key, src.VersionID, src.ETag)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return w.finishNotify(ctx, job, scan.Skipped, scan.ReasonNotFound, "the object no longer exists")
		case errors.Is(err, objstore.ErrChanged):
			return w.finishNotify(ctx, job, scan.Skipped, scan.ReasonNotFound, "the object changed since its event; the new version has its own")
		case errors.Is(err, objstore.ErrAccessDenied) && m.Final:
			return w.finishNotify(ctx, job, scan.Error, scan.ReasonAccessDenied, err.Error())
		case err != nil:
			return fmt.Errorf("worker: open object: %w", err)
		}
		defer body.Close()
		req.Body = body
		req.Effects = func(ctx context.Context, j *scan.Job) ([]string, error) {
			return w.cfg.Objects.Apply(ctx, src.Bucket, src.Key, src.VersionID, j)
		}
	} else {
		if err := w.sample(ctx, job.ID, &req); errors.Is(err, blob.ErrNotFound) {
			return w.finish(ctx, job, scan.Error, scan.ReasonNotFound, "the job's sample is no longer stored")
		} else if err != nil {
			return fmt.Errorf("worker: open sample: %w", err)
		}
		if req.Body != nil {
			defer req.Body.(io.Closer).Close()
		}
		req.Keep = w.cfg.Keep
	}
	done, err := w.cfg.Pipeline.Scan(ctx, req)
	switch {
	case err == nil:
		if job.Source.Kind != "s3" {
			w.cfg.Blobs.Delete(context.WithoutCancel(ctx), job.ID)
		}
		return w.notify(ctx, done)
	case done != nil && done.Status == scan.Done && !errors.Is(err, pipeline.ErrStore):
		// The final attempt: the verdict is stored with the failed
		// effects noted; say so and finish rather than lose the job.
		w.log.LogAttrs(ctx, slog.LevelWarn, "effects failed on the final attempt", slog.String("job", job.ID),
			slog.String("error", err.Error()))
		return w.notify(ctx, done)
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

// localBlobs is a blob store that keeps each blob in a local file
// (blob.Dir).
type localBlobs interface {
	Path(key string) (string, error)
}

// sample points req at a queued upload's bytes: the blob's own file when
// the blob store is a local folder (scanned in place, not copied again),
// else a stream (the caller closes req.Body).
func (w *Worker) sample(ctx context.Context, id string, req *pipeline.Request) error {
	if local, ok := w.cfg.Blobs.(localBlobs); ok {
		p, err := local.Path(id)
		if err == nil {
			req.Path = p
		}
		return err
	}
	body, err := w.cfg.Blobs.Open(ctx, id)
	if err == nil {
		req.Body = body
	}
	return err
}

// finish closes a job that cannot be scanned, with a verdict that is not
// clean.
func (w *Worker) finish(ctx context.Context, job *scan.Job, v scan.Verdict, reason scan.Reason, msg string) error {
	from := job.Status
	fin := time.Now().UTC()
	if from == scan.Queued || from == scan.StatusNew {
		job.Attempts++ // this delivery is an attempt, even one that ends before a scan
	}
	if job.CreatedAt.IsZero() {
		job.CreatedAt = fin
	}
	job.Status, job.Verdict, job.Reason, job.Error, job.FinishedAt = scan.Done, v, reason, msg, &fin
	var err error
	if from == scan.StatusNew {
		err = w.cfg.Jobs.CreateJob(ctx, job)
	} else {
		err = w.cfg.Jobs.UpdateJob(ctx, job, from)
	}
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("worker: record failure: %w", err)
	}
	return nil
}

// finishNotify closes the job and tells the systems that care.
func (w *Worker) finishNotify(ctx context.Context, job *scan.Job, v scan.Verdict, reason scan.Reason, msg string) error {
	if err := w.finish(ctx, job, v, reason, msg); err != nil {
		return err
	}
	return w.notify(ctx, job)
}

func (w *Worker) notify(ctx context.Context, job *scan.Job) error {
	if w.cfg.Notify == nil {
		return nil
	}
	if err := w.cfg.Notify(ctx, job); err != nil {
		return fmt.Errorf("worker: notify: %w", err)
	}
	return nil
}
