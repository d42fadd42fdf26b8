// Package worker runs queued jobs: it takes job IDs from the queue, reads
// each job's bytes from the blob store, runs them through the pipeline and
// acknowledges the message only after the result is stored. A worker that
// dies mid-job leaves its message unacknowledged, so the queue delivers it
// again; the store's compare-and-set makes the second run store one
// result. One that dies during a job's last attempt leaves it to the
// queue's abandoned delivery, on which a worker ends the job as error
// without running it again.
//
// A Worker also runs jobs handed to it: the bucket intake's in-place scans
// of broker events (Process) and a sweep's listed objects and files
// (ProcessOnce), so that every bucket job is read, checked, scanned, acted
// on, recorded and notified by the same code.
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
	// Queue is what Run consumes; only Run needs it.
	Queue Consumer
	// Jobs and Pipeline are required.
	Jobs     Jobs
	Pipeline Scanner
	// Blobs holds the samples of queued uploads; without it such jobs
	// end as errors.
	Blobs Blobs
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

// Worker runs jobs: those of its queue (Run), and those handed to it
// (Process, ProcessOnce). It is safe for concurrent use.
type Worker struct {
	cfg Config
	log *slog.Logger
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Jobs == nil || cfg.Pipeline == nil {
		return nil, errors.New("worker: jobs and pipeline are required")
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
	if w.cfg.Queue == nil {
		return errors.New("worker: run: no queue configured")
	}
	return w.cfg.Queue.Consume(ctx, w.Handle, queue.ConsumeOptions{Concurrency: w.cfg.Concurrency, SoftStop: w.cfg.SoftStop})
}

// Handle runs one delivery. It is exported for tests that drive a worker
// without a broker.
func (w *Worker) Handle(ctx context.Context, d queue.Delivery) {
	m := d.Message()
	log := w.log.With("job", m.JobID, "attempt", m.Attempt)
	if m.Abandoned {
		log = log.With("abandoned", true)
	}
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
	if m.Abandoned {
		return w.abandon(ctx, job, m.Attempt-1)
	}
	return w.Process(ctx, job, m.Final)
}

// abandon ends a job whose message came back after its last scan attempt
// (queue.Message.Abandoned): the worker of that attempt stopped without
// settling it (killed, out of memory, maybe crashed by the sample itself),
// so the job is not run again but stored as done with verdict error and
// notified. deliveries is how many deliveries came before this one. A job
// found done (the stopped worker stored its result first) only gets its
// tail finished. A nil error means the message may be acknowledged.
func (w *Worker) abandon(ctx context.Context, job *scan.Job, deliveries int) error {
	for reread := false; ; reread = true {
		if job.Status == scan.Done {
			w.dropUpload(ctx, job)
			return w.notify(ctx, job)
		}
		from := job.Status
		fin := time.Now().UTC()
		job.Status, job.Verdict, job.Reason, job.FinishedAt = scan.Done, scan.Error, scan.ReasonEngineError, &fin
		job.Error = fmt.Sprintf("no verdict after %d deliveries: the worker stopped (killed, out of memory, or crashed by the sample) during the last attempt", deliveries)
		err := w.cfg.Jobs.UpdateJob(ctx, job, from)
		if errors.Is(err, store.ErrConflict) && !reread {
			// Moved on meanwhile (the stopped worker came back after
			// all): look again.
			if job, err = w.cfg.Jobs.GetJob(ctx, job.ID); err != nil {
				return fmt.Errorf("worker: get job: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("worker: record abandoned job %s: %w", job.ID, err)
		}
		w.log.LogAttrs(ctx, slog.LevelWarn, "job ended as error: its worker stopped during the last attempt",
			slog.String("job", job.ID), slog.Int("deliveries", deliveries))
		w.dropUpload(ctx, job)
		return w.notify(ctx, job)
	}
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
	if final {
		return w.run(ctx, job, nil, last)
	}
	return w.run(ctx, job, nil, retry)
}

// ProcessOnce runs a job of a one-shot pass that can be run again (a
// sweep) to its end, as Process does on a final attempt, with two
// differences: an error verdict is stored without the object's effects,
// so that no verdict tag marks the object as done for a later pass; and a
// run that ctx cuts short leaves the job queued for that later pass
// rather than stored with a spurious error. Nothing else is left to a
// retry: an object found gone or changed, when it is read or by its
// effects, ends the job as skipped with reason not_found.
//
// The job is a stored one, queued or running. body, if not nil, is its
// sample, opened by the caller (a local file: there are no effects); else
// the job's object is read as Process reads it. A nil error means the job
// is done and holds its verdict; an error wrapping store.ErrConflict means
// another run moved the job on; any other error leaves the job queued.
func (w *Worker) ProcessOnce(ctx context.Context, job *scan.Job, body io.Reader) error {
	return w.run(ctx, job, body, once)
}

// attempt is what a run of a job may leave to a later one.
type attempt int

const (
	// retry leaves an error verdict, failed effects and an unreadable
	// object to the next delivery: the job goes back to queued.
	retry attempt = iota
	// last is the final delivery: an error verdict is the result, with
	// its effects.
	last
	// once is a one-shot pass; see ProcessOnce.
	once
)

func (w *Worker) run(ctx context.Context, job *scan.Job, body io.Reader, a attempt) error {
	if job.Status == scan.Done {
		// Another delivery finished it, or this one did and then failed
		// to notify or to acknowledge: finish the tail again (both are
		// idempotent).
		w.dropUpload(ctx, job)
		return w.notify(ctx, job)
	}
	req := pipeline.Request{Job: job, Name: job.Name, Size: job.Size, Source: job.Source, RequeueOnError: a != last}
	switch {
	case body != nil:
		req.Body = body
		done, err := w.cfg.Pipeline.Scan(ctx, req)
		return w.settle(ctx, job, done, err, a)
	case job.Source.Kind == "s3":
		return w.object(ctx, req, a)
	}
	return w.upload(ctx, req, a)
}

// object reads an S3 job's object, checked to be the content the job is
// about, and scans it with the object's effects. An object gone or
// changed ends the job as skipped: never an error, never retried.
func (w *Worker) object(ctx context.Context, req pipeline.Request, a attempt) error {
	job, src := req.Job, req.Job.Source
	if w.cfg.Objects == nil {
		return w.Finish(ctx, job, scan.Error, scan.ReasonUnsupported, "bucket scanning is not configured on this worker")
	}
	body, info, err := w.cfg.Objects.Open(ctx, src.Bucket, src.Key, src.VersionID, src.ETag)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return w.Finish(ctx, job, scan.Skipped, scan.ReasonNotFound, "the object no longer exists")
	case errors.Is(err, objstore.ErrChanged):
		return w.Finish(ctx, job, scan.Skipped, scan.ReasonNotFound, "the object changed since its job was made; its new content has a job of its own")
	case errors.Is(err, objstore.ErrAccessDenied) && a != retry:
		return w.Finish(ctx, job, scan.Error, scan.ReasonAccessDenied, err.Error())
	case err != nil && a == last:
		// No delivery comes after this one: the job ends as an error
		// rather than stay queued once the queue drops its message.
		return w.Finish(ctx, job, scan.Error, scan.ReadReason(err), err.Error())
	case err != nil:
		return fmt.Errorf("worker: open object: %w", err)
	}
	defer body.Close()
	if info.VersionID != "" {
		// Pin the version that was read: on a versioned bucket a delete
		// must remove these bytes, not add a delete marker over them.
		job.Source.VersionID = info.VersionID
	}
	src = job.Source
	req.Body, req.Size, req.Source = body, info.Size, src
	req.Effects = func(ctx context.Context, j *scan.Job) ([]string, error) {
		return w.cfg.Objects.Apply(ctx, src.Bucket, src.Key, src.VersionID, j)
	}
	done, err := w.cfg.Pipeline.Scan(ctx, req)
	return w.settle(ctx, job, done, err, a)
}

// upload scans a queued upload's sample from the blob store, and deletes
// the sample once the job is done.
func (w *Worker) upload(ctx context.Context, req pipeline.Request, a attempt) error {
	job := req.Job
	if w.cfg.Blobs == nil {
		return w.Finish(ctx, job, scan.Error, scan.ReasonUnsupported, "queued uploads are not stored for this worker")
	}
	if err := w.sample(ctx, job.ID, &req); errors.Is(err, blob.ErrNotFound) {
		return w.Finish(ctx, job, scan.Error, scan.ReasonNotFound, "the job's sample is no longer stored")
	} else if err != nil && a == last {
		// As for an unreadable object: the final delivery ends the job.
		return w.Finish(ctx, job, scan.Error, scan.ReadReason(err), err.Error())
	} else if err != nil {
		return fmt.Errorf("worker: open sample: %w", err)
	}
	if req.Body != nil {
		defer req.Body.(io.Closer).Close()
	}
	req.Keep = w.cfg.Keep
	done, err := w.cfg.Pipeline.Scan(ctx, req)
	if err == nil {
		w.dropUpload(ctx, job)
	}
	return w.settle(ctx, job, done, err, a)
}

// dropUpload deletes a queued upload's sample, its job being done.
func (w *Worker) dropUpload(ctx context.Context, job *scan.Job) {
	if job.Source.Kind != "s3" && w.cfg.Blobs != nil {
		w.cfg.Blobs.Delete(context.WithoutCancel(ctx), job.ID)
	}
}

// settle sorts out what became of a job the pipeline ran (done is what
// Scan returned, err its error) and notifies when it is done. It returns
// nil when nothing is left to do.
func (w *Worker) settle(ctx context.Context, job, done *scan.Job, err error, a attempt) error {
	switch {
	case err == nil:
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
		// A one-shot pass is told either way, to count it.
		if a != once {
			if cur, gerr := w.cfg.Jobs.GetJob(ctx, job.ID); gerr == nil && cur.Status == scan.Done {
				return nil
			}
		}
		return fmt.Errorf("worker: job changed under us: %w", err)
	case a == once && ctx.Err() == nil:
		return w.endRequeued(ctx, job, err)
	}
	return fmt.Errorf("worker: %w", err)
}

// endRequeued ends, for a one-shot pass, a job the pipeline put back in
// the queue for a retry that will not come, when that retry would only
// find what is known now.
func (w *Worker) endRequeued(ctx context.Context, job *scan.Job, err error) error {
	switch {
	case errors.Is(err, pipeline.ErrRequeued):
		// An error verdict (an engine down, a timeout), with its reason
		// and error noted by the pipeline: the result until the next
		// pass, which scans the object again.
		err = w.record(ctx, job, scan.Error, job.Reason, job.Error)
	case errors.Is(err, objstore.ErrNotFound), errors.Is(err, objstore.ErrChanged):
		// The effects found the object gone or replaced after it was
		// read: the verdict applies to nothing there now.
		err = w.record(ctx, job, scan.Skipped, scan.ReasonNotFound, "the object was deleted or replaced during its scan")
	default:
		// Other failed effects (a denied tag write, no room for the
		// status tag): the job stays queued, for the next pass.
		return fmt.Errorf("worker: %w", err)
	}
	if err != nil {
		return err
	}
	return w.notify(ctx, job)
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

// Finish ends a job that cannot be scanned (its sample gone, changed or
// unreadable) with a verdict that is not clean, stores it and notifies.
// The job is one Process or ProcessOnce would take; the run that ends it
// counts as an attempt.
func (w *Worker) Finish(ctx context.Context, job *scan.Job, v scan.Verdict, reason scan.Reason, msg string) error {
	if err := w.finish(ctx, job, v, reason, msg); err != nil {
		return err
	}
	return w.notify(ctx, job)
}

// finish is Finish without the notification.
func (w *Worker) finish(ctx context.Context, job *scan.Job, v scan.Verdict, reason scan.Reason, msg string) error {
	if job.Status == scan.Queued || job.Status == scan.StatusNew {
		job.Attempts++ // this delivery is an attempt, even one that ends before a scan
	}
	return w.record(ctx, job, v, reason, msg)
}

// record stores a job as done with a verdict decided here rather than by
// the pipeline. A job someone else moved on meanwhile keeps their record.
func (w *Worker) record(ctx context.Context, job *scan.Job, v scan.Verdict, reason scan.Reason, msg string) error {
	from := job.Status
	fin := time.Now().UTC()
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
		return fmt.Errorf("worker: record job %s: %w", job.ID, err)
	}
	return nil
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
