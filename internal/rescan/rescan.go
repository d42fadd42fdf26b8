// Package rescan re-checks stored verdicts when the signatures change: it
// walks finished jobs, and every one whose verdict was made with other
// engine versions (or is older than a TTL) is scanned again through the
// one pipeline, from the same source. A verdict that changed updates the
// job, re-applies the effects (tags, delete, quarantine) and sends
// verdict.changed with the old and new verdicts.
//
// Content must be fetched again: jobs from buckets are re-read from S3
// (the version the event named); uploads are read from the kept copies
// when keep_uploads is on, else (or once their copy was pruned) counted
// as having no content; the proxy re-checks its cached files by itself
// whenever it serves them.
package rescan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Jobs is what a rescan needs of the store.
type Jobs interface {
	ListJobs(ctx context.Context, f store.JobFilter) (store.JobPage, error)
	UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error
}

// Scanner is the pipeline.
type Scanner interface {
	Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error)
	EnginesKey(ctx context.Context) (string, error)
}

// Objects reads bucket objects and acts on verdicts.
type Objects interface {
	Open(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, objstore.Info, error)
	Apply(ctx context.Context, bucket, key, versionID string, job *scan.Job) ([]string, error)
}

// Uploads reads kept uploads by SHA-256.
type Uploads interface {
	Open(ctx context.Context, key string) (io.ReadCloser, error)
}

// Config configures a rescan.
type Config struct {
	Jobs     Jobs
	Pipeline Scanner
	// Objects re-reads bucket jobs; nil counts them as having no content.
	Objects Objects
	// Uploads, if set, holds kept uploads by SHA-256 (keep_uploads).
	Uploads Uploads
	// VersionChanged selects jobs whose engines' versions differ from the
	// current ones.
	VersionChanged bool
	// OlderThan, if not 0, also selects jobs finished longer ago.
	OlderThan time.Duration
	// Changed, if set, is told about every verdict that changed.
	Changed func(ctx context.Context, job *scan.Job, previous scan.Verdict) error
	// Batch is the page size of the walk; 0 means 200.
	Batch  int
	Logger *slog.Logger
	Now    func() time.Time
}

// Summary counts what a rescan did.
type Summary struct {
	// Checked jobs were looked at; Selected needed a rescan.
	Checked, Selected int
	// Rescanned were scanned again; of those, Changed got another
	// verdict.
	Rescanned, Changed int
	// NoContent jobs could not be fetched again (uploads, objects gone).
	NoContent int
	// Errors could not be rescanned or their effects not applied.
	Errors int
}

// Run walks the finished jobs, newest first, in bounded pages.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	var sum Summary
	if cfg.Jobs == nil || cfg.Pipeline == nil {
		return sum, errors.New("rescan: jobs and pipeline are required")
	}
	if !cfg.VersionChanged && cfg.OlderThan <= 0 {
		return sum, errors.New("rescan: say what to rescan: version changes, an age, or both")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = 200
	}
	current, err := cfg.Pipeline.EnginesKey(ctx)
	if err != nil {
		return sum, fmt.Errorf("rescan: %w", err)
	}
	// Jobs finished before the walk began: a rescan's own updates must
	// not be walked again.
	started := now()
	f := store.JobFilter{Status: scan.Done, Limit: batch}
	for {
		page, err := cfg.Jobs.ListJobs(ctx, f)
		if err != nil {
			return sum, fmt.Errorf("rescan: list jobs: %w", err)
		}
		for _, job := range page.Jobs {
			if err := ctx.Err(); err != nil {
				return sum, err
			}
			sum.Checked++
			if !selected(cfg, job, current, started) {
				continue
			}
			sum.Selected++
			rescanOne(ctx, cfg, log, job, &sum)
		}
		if page.NextCursor == "" {
			return sum, nil
		}
		f.Cursor = page.NextCursor
	}
}

func selected(cfg Config, job *scan.Job, current string, started time.Time) bool {
	if job.Verdict != scan.Clean && job.Verdict != scan.Infected {
		return false // errors and skips are not verdicts to keep up to date
	}
	if job.FinishedAt != nil && job.FinishedAt.After(started) {
		return false
	}
	if cfg.VersionChanged {
		evs := make([]scan.EngineVersion, len(job.Engines))
		for i, e := range job.Engines {
			evs[i] = scan.EngineVersion{Name: e.Name, Version: e.Version}
		}
		if scan.EnginesKey(evs) != current {
			return true
		}
	}
	return cfg.OlderThan > 0 && job.FinishedAt != nil && started.Sub(*job.FinishedAt) > cfg.OlderThan
}

// rescanOne scans one job again from its source.
func rescanOne(ctx context.Context, cfg Config, log *slog.Logger, job *scan.Job, sum *Summary) {
	src := job.Source
	var body io.ReadCloser
	var effects func(ctx context.Context, j *scan.Job) ([]string, error)
	switch {
	case src.Kind == "s3" && cfg.Objects != nil:
		b, _, err := cfg.Objects.Open(ctx, src.Bucket, src.Key, src.VersionID, src.ETag)
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrChanged) {
			sum.NoContent++ // gone or replaced: the new version has its own job
			return
		}
		if err != nil {
			sum.Errors++
			log.LogAttrs(ctx, slog.LevelWarn, "rescan: open failed", slog.String("job", job.ID), slog.String("error", err.Error()))
			return
		}
		body = b
		effects = func(ctx context.Context, j *scan.Job) ([]string, error) {
			return cfg.Objects.Apply(ctx, src.Bucket, src.Key, src.VersionID, j)
		}
	case src.Kind == "upload" && cfg.Uploads != nil && job.SHA256 != "":
		b, err := cfg.Uploads.Open(ctx, job.SHA256)
		if err != nil {
			sum.NoContent++
			return
		}
		body = b
	default:
		sum.NoContent++
		return
	}
	defer body.Close()
	previous := job.Verdict
	// done -> queued is the state machine's way back; the pipeline takes
	// it from there (queued -> running -> done).
	job.Status = scan.Queued
	if err := cfg.Jobs.UpdateJob(ctx, job, scan.Done); err != nil {
		sum.Errors++
		log.LogAttrs(ctx, slog.LevelWarn, "rescan: requeue failed", slog.String("job", job.ID), slog.String("error", err.Error()))
		return
	}
	done, err := cfg.Pipeline.Scan(ctx, pipeline.Request{
		Job: job, Name: job.Name, Body: body, Size: job.Size, Source: src, NoCache: true, Effects: effects,
	})
	if err != nil {
		sum.Errors++
		log.LogAttrs(ctx, slog.LevelWarn, "rescan failed", slog.String("job", job.ID), slog.String("error", err.Error()))
		return
	}
	sum.Rescanned++
	if done.Verdict == previous {
		return
	}
	sum.Changed++
	log.LogAttrs(ctx, slog.LevelInfo, "verdict changed", slog.String("job", job.ID), slog.String("bucket", src.Bucket),
		slog.String("key", src.Key), slog.String("from", string(previous)), slog.String("to", string(done.Verdict)))
	if cfg.Changed != nil {
		if err := cfg.Changed(ctx, done, previous); err != nil {
			sum.Errors++
			log.LogAttrs(ctx, slog.LevelWarn, "verdict.changed not delivered", slog.String("job", job.ID), slog.String("error", err.Error()))
		}
	}
}
