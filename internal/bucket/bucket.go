// Package bucket is bucket scanning's intake: it turns S3 / MinIO event
// notifications — from RabbitMQ, NATS or MinIO's webhook target — into
// queued scan jobs, once per object version, and leaves everything after
// that to the one pipeline (workers read the object, scan it, act on the
// verdict, store the job, notify, then acknowledge).
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

// Config configures an Intake.
type Config struct {
	Jobs  Jobs
	Queue Publisher
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
	if cfg.Jobs == nil || cfg.Queue == nil {
		return nil, errors.New("bucket: jobs and queue are required")
	}
	in := &Intake{cfg: cfg, log: cfg.Logger}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	return in, nil
}

// Outcome counts what one notification led to.
type Outcome struct {
	// Queued jobs are new; Duplicates were seen before (and re-queued
	// if they had not started); Ignored events do not call for a scan
	// (tag writes, removals, lazaret's own copies); OutOfScope events
	// are for keys or sizes the configuration leaves out.
	Queued, Duplicates, Ignored, OutOfScope int
	// JobIDs are the jobs of the queued and duplicate events.
	JobIDs []string
}

// Handle parses one notification body and queues a job for every event
// that calls for a scan. An error means the notification must be retried
// (the store or the queue failed) or dropped (it does not parse: wraps
// ErrMalformed).
func (in *Intake) Handle(ctx context.Context, body []byte) (Outcome, error) {
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
		dup, id, err := in.queue(ctx, ev)
		if err != nil {
			return out, err
		}
		out.JobIDs = append(out.JobIDs, id)
		if dup {
			out.Duplicates++
		} else {
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

// queue creates and publishes the event's job. A job that exists already
// is a duplicate; if it never started, it is published again (the first
// publish may be what failed).
func (in *Intake) queue(ctx context.Context, ev s3event.Event) (dup bool, id string, err error) {
	id = JobID(ev)
	now := time.Now().UTC()
	job := &scan.Job{
		ID: id, Status: scan.Queued, Name: path.Base(ev.Key), Size: ev.Size, CreatedAt: now,
		Source: scan.Source{Kind: "s3", Bucket: ev.Bucket, Key: ev.Key, VersionID: ev.VersionID, ETag: ev.ETag},
	}
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
	if in.cfg.Pending != nil && !dup {
		if err := in.cfg.Pending.TagPending(ctx, ev.Bucket, ev.Key, ev.VersionID); err != nil {
			// The scan still happens; a missing pending tag only widens
			// the window in which a bucket policy cannot tell.
			in.log.LogAttrs(ctx, slog.LevelWarn, "pending tag failed", slog.String("bucket", ev.Bucket),
				slog.String("key", ev.Key), slog.String("error", err.Error()))
		}
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
