// Package bucket is bucket scanning's intake: it turns S3 / MinIO event
// notifications — from RabbitMQ, NATS or MinIO's webhook target — into
// queued scan jobs, once per object version, and leaves everything after
// that to the one pipeline (workers read the object, scan it, act on the
// verdict, store the job, notify, then acknowledge). With a Runner it
// scans at once instead, in the goroutine that holds the broker's
// delivery, which is then acknowledged last.
package bucket

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/s3event"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Jobs is what the intake needs of the store.
type Jobs interface {
	CreateJob(ctx context.Context, job *scan.Job) error
	GetJob(ctx context.Context, id string) (*scan.Job, error)
}

// Publisher queues jobs.
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) error
}

// PendingTagger tags an object "pending" when its event arrives.
type PendingTagger interface {
	TagPending(ctx context.Context, bucket, key, versionID string) error
}

// Runner runs a bucket job to its end in the caller's goroutine (the
// worker's Process): scan, effects, store, notify. It returns nil when the
// event may be acknowledged.
type Runner interface {
	Process(ctx context.Context, job *scan.Job, final bool) error
}

// Config configures an Intake.
type Config struct {
	Jobs Jobs
	// Queue receives the jobs of events, for workers to scan; with a
	// Runner, only the jobs that need a retry.
	Queue Publisher
	// Runner, if set, scans each event's object right away, in the
	// goroutine that delivered the event, instead of queueing a job: the
	// broker's own durable delivery (acknowledged only after Handle
	// returns) then is the job's queue entry, which saves a second queue,
	// a job row written before the scan and a read after it.
	Runner Runner
	// MaxAttempts bounds the deliveries of one event with Runner: the
	// last one stores an error verdict instead of asking for another.
	// 0 means queue.DefaultMaxDeliver.
	MaxAttempts int
	// Pending, if set, tags every accepted object as pending at once.
	Pending PendingTagger
	// Buckets scopes what is scanned; empty means every bucket.
	Buckets []config.Bucket
	// QuarantineBucket and QuarantinePrefix are never scanned: lazaret's
	// own copies land there.
	QuarantineBucket, QuarantinePrefix string
	Logger                             *slog.Logger
}

// Intake turns events into jobs. It is safe for concurrent use.
type Intake struct {
	cfg Config
	log *slog.Logger
}

// New returns an Intake.
func New(cfg Config) (*Intake, error) {
	if cfg.Jobs == nil || (cfg.Queue == nil && cfg.Runner == nil) {
		return nil, errors.New("bucket: jobs and a queue or a runner are required")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = queue.DefaultMaxDeliver
	}
	in := &Intake{cfg: cfg, log: cfg.Logger}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	return in, nil
}

// Config returns the intake's configuration, for a variant of it.
func (in *Intake) Config() Config { return in.cfg }

// Outcome counts what one notification led to.
type Outcome struct {
	// Queued jobs are new; Scanned ones were scanned at once (with a
	// Runner); Duplicates were seen before (and re-queued or finished if
	// they had not); Ignored events do not call for a scan (tag writes,
	// removals, lazaret's own copies); OutOfScope events are for keys or
	// sizes the configuration leaves out.
	Queued, Scanned, Duplicates, Ignored, OutOfScope int
	// JobIDs are the jobs of the queued and duplicate events.
	JobIDs []string
}

// Handle parses one notification body and queues a job for every event
// that calls for a scan. An error means the notification must be retried
// (the store or the queue failed) or dropped (it does not parse: wraps
// ErrMalformed).
func (in *Intake) Handle(ctx context.Context, body []byte) (Outcome, error) {
	return in.HandleDelivery(ctx, body, false)
}

// HandleDelivery is Handle for a broker delivery that says whether it was
// delivered before (and not acknowledged: a crash, a lost connection).
// With a Runner, a redelivered event's job is stored before its scan, so
// that attempts are counted even when each one ends in a crash.
func (in *Intake) HandleDelivery(ctx context.Context, body []byte, redelivered bool) (Outcome, error) {
	var out Outcome
	events, err := s3event.Parse(body)
	if err != nil {
		return out, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, ev := range events {
		switch {
		case !ev.TriggersScan() || in.ownCopy(ev):
			out.Ignored++
			in.log.LogAttrs(ctx, slog.LevelDebug, "event ignored", slog.String("event", ev.Name),
				slog.String("bucket", ev.Bucket), slog.String("key", ev.Key))
			continue
		case !in.inScope(ev):
			out.OutOfScope++
			continue
		}
		var dup bool
		var id string
		if in.cfg.Runner != nil {
			dup, id, err = in.run(ctx, ev, redelivered)
		} else {
			dup, id, err = in.queue(ctx, ev)
		}
		if err != nil {
			return out, err
		}
		out.JobIDs = append(out.JobIDs, id)
		switch {
		case dup:
			out.Duplicates++
		case in.cfg.Runner != nil:
			out.Scanned++
		default:
			out.Queued++
		}
	}
	return out, nil
}

// ErrMalformed marks notifications that can never be handled.
var ErrMalformed = errors.New("bucket: malformed event")

// JobID is the job ID for an event: a ULID with the event's time and
// entropy from its dedupe key, so that the same object version announced
// twice maps to one job, and IDs still sort by time.
func JobID(ev s3event.Event) string {
	sum := sha256.Sum256([]byte(ev.DedupeKey()))
	var id ulid.ULID
	ms := ev.Time.UnixMilli()
	if ms < 0 || ev.Time.IsZero() {
		ms = 0
	}
	_ = id.SetTime(uint64(ms))
	_ = id.SetEntropy(sum[:10])
	return id.String()
}

// newJob is the job an event calls for, not stored yet.
func newJob(ev s3event.Event) *scan.Job {
	return &scan.Job{
		ID: JobID(ev), Status: scan.StatusNew, Name: path.Base(ev.Key), Size: ev.Size, CreatedAt: time.Now().UTC(),
		Source: scan.Source{Kind: "s3", Bucket: ev.Bucket, Key: ev.Key, VersionID: ev.VersionID, ETag: ev.ETag},
	}
}

// run scans the event's object now, through the Runner. A job stored
// already is a duplicate (finished: its tail is redone, which is
// idempotent) or an earlier attempt to continue.
func (in *Intake) run(ctx context.Context, ev s3event.Event, redelivered bool) (dup bool, id string, err error) {
	job := newJob(ev)
	id = job.ID
	cur, err := in.cfg.Jobs.GetJob(ctx, id)
	switch {
	case err == nil:
		job, dup = cur, cur.Status == scan.Done
	case !errors.Is(err, store.ErrNotFound):
		return false, id, fmt.Errorf("bucket: get job %s: %w", id, err)
	case redelivered:
		// Delivered before without a stored result: maybe it crashed
		// the scanner. Store the job first so the attempt counts.
		job.Status = scan.Queued
		switch err := in.cfg.Jobs.CreateJob(ctx, job); {
		case errors.Is(err, store.ErrConflict):
			// Another delivery of the same event stored it first.
			if job, err = in.cfg.Jobs.GetJob(ctx, id); err != nil {
				return false, id, fmt.Errorf("bucket: get job %s: %w", id, err)
			}
			dup = job.Status == scan.Done
		case err != nil:
			return false, id, fmt.Errorf("bucket: create job: %w", err)
		}
	}
	if job.Status == scan.StatusNew || (job.Status == scan.Queued && job.Attempts == 0) {
		in.tagPending(ctx, ev)
	}
	final := job.Attempts+1 >= in.cfg.MaxAttempts
	err = in.cfg.Runner.Process(ctx, job, final)
	if err != nil && job.Status == scan.Queued && in.cfg.Queue != nil && in.storedQueued(ctx, id) {
		// The job is stored as queued (an engine error or failed effects
		// put it back): its retries go through the job queue, with the
		// queue's backoff, and this event is done.
		in.log.LogAttrs(ctx, slog.LevelDebug, "job queued for a retry", slog.String("job", id), slog.String("error", err.Error()))
		if perr := in.cfg.Queue.Publish(ctx, queue.Message{JobID: id}); perr != nil {
			return dup, id, fmt.Errorf("bucket: publish job %s: %w", id, perr)
		}
		return dup, id, nil
	}
	if err != nil {
		return dup, id, fmt.Errorf("bucket: job %s: %w", id, err)
	}
	return dup, id, nil
}

// storedQueued reports whether the store holds job id as queued. A job
// put back for a retry is queued in memory even when saving it so failed;
// then the event is all there is of the job, and must come again.
func (in *Intake) storedQueued(ctx context.Context, id string) bool {
	cur, err := in.cfg.Jobs.GetJob(ctx, id)
	return err == nil && cur.Status == scan.Queued
}

// tagPending marks the object pending, if configured.
func (in *Intake) tagPending(ctx context.Context, ev s3event.Event) {
	if in.cfg.Pending == nil {
		return
	}
	if err := in.cfg.Pending.TagPending(ctx, ev.Bucket, ev.Key, ev.VersionID); err != nil {
		// The scan still happens; a missing pending tag only widens
		// the window in which a bucket policy cannot tell.
		in.log.LogAttrs(ctx, slog.LevelWarn, "pending tag failed", slog.String("bucket", ev.Bucket),
			slog.String("key", ev.Key), slog.String("error", err.Error()))
	}
}

// queue creates and publishes the event's job. A job that exists already
// is a duplicate; if it never started, it is published again (the first
// publish may be what failed).
func (in *Intake) queue(ctx context.Context, ev s3event.Event) (dup bool, id string, err error) {
	job := newJob(ev)
	job.Status = scan.Queued
	id = job.ID
	err = in.cfg.Jobs.CreateJob(ctx, job)
	switch {
	case errors.Is(err, store.ErrConflict):
		dup = true
		cur, gerr := in.cfg.Jobs.GetJob(ctx, id)
		if gerr != nil {
			return dup, id, fmt.Errorf("bucket: duplicate job %s: %w", id, gerr)
		}
		if cur.Status != scan.Queued {
			return dup, id, nil
		}
	case err != nil:
		return false, id, fmt.Errorf("bucket: create job: %w", err)
	}
	if !dup {
		in.tagPending(ctx, ev)
	}
	if err := in.cfg.Queue.Publish(ctx, queue.Message{JobID: id}); err != nil {
		return dup, id, fmt.Errorf("bucket: publish job %s: %w", id, err)
	}
	return dup, id, nil
}

// ownCopy reports whether the event is about lazaret's own quarantine
// copy.
func (in *Intake) ownCopy(ev s3event.Event) bool {
	return in.cfg.QuarantineBucket != "" && ev.Bucket == in.cfg.QuarantineBucket &&
		strings.HasPrefix(ev.Key, in.cfg.QuarantinePrefix)
}

// inScope applies the bucket scopes.
func (in *Intake) inScope(ev s3event.Event) bool {
	if len(in.cfg.Buckets) == 0 {
		return true
	}
	for _, b := range in.cfg.Buckets {
		if b.Name == ev.Bucket {
			return Match(b, ev.Key, ev.Size)
		}
	}
	return false
}

// Match reports whether a key and size are in a bucket's scope.
func Match(b config.Bucket, key string, size int64) bool {
	anyPrefix := func(ps []string) bool {
		for _, p := range ps {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
	anySuffix := func(ss []string) bool {
		for _, s := range ss {
			if strings.HasSuffix(key, s) {
				return true
			}
		}
		return false
	}
	switch {
	case len(b.IncludePrefixes) > 0 && !anyPrefix(b.IncludePrefixes),
		anyPrefix(b.ExcludePrefixes),
		len(b.IncludeSuffixes) > 0 && !anySuffix(b.IncludeSuffixes),
		anySuffix(b.ExcludeSuffixes),
		b.MinSize > 0 && size < int64(b.MinSize),
		b.MaxSize > 0 && size > int64(b.MaxSize):
		return false
	}
	return true
}
