// Package sweep scans what is already there: every object of a bucket
// under a prefix, or every regular file under a local folder, through the
// one pipeline. It is the reconciliation for anything the event path
// missed (MinIO drops events while a target is down) and the way to bring
// an existing bucket under lazaret.
//
// # Jobs and effects
//
// Each object becomes a job whose ID is deterministic (JobID: bucket, key,
// version, ETag; FileJobID: path, size, modification time), with the
// source an event job would have (Kind "s3"), so it looks like any bucket
// job, and is run by the code that runs event jobs (worker.ProcessOnce):
// the object is read only if it still has the listed ETag, scanned by the
// pipeline, and objstore's Apply acts on the verdict: tags, delete and
// quarantine happen exactly as for events. Local files get Source Kind
// "sweep" and no effects. An error verdict is stored without effects, so
// that no status tag marks the object as done for a later sweep.
//
// # Resuming
//
// Before an object is read, its job is looked up: a job that is done with
// a verdict other than error is not scanned again, so a sweep run again
// after an interruption (or a crash) continues where it stopped, and one
// run again after it finished scans nothing. A job left queued or running
// by the interrupted run is taken up again; one whose verdict is error is
// scanned again. Jobs are created queued before the object is read, and a
// scan cut short by cancellation leaves its job queued, not done with a
// spurious error.
//
// Objects the event path scanned have other job IDs (events carry
// sequencers); with Config.UntaggedOnly, the status tag tells instead: an
// object tagged with a verdict is skipped, one tagged pending is not.
//
// # Failures
//
// One object's failure never stops a sweep: an object gone or changed
// between the listing and its read (or its effects) is recorded as a
// skipped job with reason not_found, one that cannot be read as an error
// job with reason access_denied, and any other failure is logged and
// counted in Summary.Errors. Only a failed listing (no such bucket, no
// access, an unreadable folder root) or the end of the context stops a
// sweep early; Run then still returns what was done.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/worker"
)

// Scanner is the pipeline. A sweep's jobs are run by a worker.Worker, so
// the sweep needs of the pipeline, the store and the bucket what the
// worker needs.
type Scanner = worker.Scanner

// Jobs is what a sweep needs of the store: the store the pipeline writes
// to.
type Jobs = worker.Jobs

// Objects reads S3 objects and acts on their verdicts; *objstore.Store is
// one.
type Objects = worker.Objects

// objectsConfig is the optional ability of an Objects (*objstore.Store
// has it) to tell its effect settings, from which a sweep takes the status
// tag's name and the quarantine area when its Config leaves them empty.
type objectsConfig interface {
	Config() objstore.Config
}

// Progress is told about the sweep's progress; *progress.Bar is one.
// Every listed object adds one to the total and, once handled (scanned or
// skipped), one done.
type Progress interface {
	AddTotal(n int64)
	TotalKnown()
	Done(size int64, infected bool)
}

// Config configures a sweep.
type Config struct {
	// Target is the bucket and prefix, or the folder.
	Target Target
	// Pipeline scans each object and stores its job. Required.
	Pipeline Scanner
	// Jobs is the store the pipeline writes to. Required: deterministic
	// job IDs in it are what make a sweep resumable.
	Jobs Jobs

	// Lister lists the bucket; required for a bucket target.
	Lister Lister
	// Objects reads objects and applies the effects; required for a
	// bucket target.
	Objects Objects
	// UntaggedOnly skips objects whose status tag holds a verdict
	// (clean, infected, error, skipped): scanned already, by the event
	// path or an earlier sweep. An object tagged pending is scanned.
	UntaggedOnly bool
	// Tags reads object tags; required with UntaggedOnly. Nil takes
	// Lister when it reads tags too (*S3Lister does).
	Tags TagReader
	// TagKey names the status tag; "" takes it from Objects when that
	// can tell (*objstore.Store), else objstore.DefaultTagKey.
	TagKey string
	// Buckets scopes the sweep as it scopes events (bucket.Match): when
	// the target's bucket has an entry, keys and sizes outside it are
	// skipped. A bucket without an entry is swept whole, since the user
	// named it.
	Buckets []config.Bucket
	// Exclude reports keys never to scan: lazaret's quarantine area,
	// where scanning would find the same infection again and, with
	// OnInfected delete, destroy the evidence. Nil takes
	// objstore.Config.Excludes from Objects when it can tell.
	Exclude func(bucket, key string) bool

	// Notify, if set, is told about every job the sweep finishes (as the
	// worker tells the webhooks); its failures are logged.
	Notify func(ctx context.Context, job *scan.Job) error
	// Concurrency is how many objects are scanned at once; 0 means 4.
	Concurrency int
	// Progress, if set, follows the sweep.
	Progress Progress
	// Logger receives a line per failure and one at the end; nil
	// discards.
	Logger *slog.Logger
}

// Summary counts what a sweep did. Every listed object ends in exactly
// one of Skipped, Clean, Infected, Unscannable, Errors and Unfinished.
type Summary struct {
	// Listed objects (or files) were found under the target.
	Listed int64
	// Scanned objects went through the pipeline to a verdict.
	Scanned int64
	// Skipped objects were not scanned: the sum of the four below.
	Skipped int64
	// Resumed objects had a finished job already (an earlier sweep).
	Resumed int64
	// Tagged objects carried a verdict tag (UntaggedOnly).
	Tagged int64
	// OutOfScope objects are excluded by the bucket scope, the
	// quarantine area, or are folder markers.
	OutOfScope int64
	// Gone objects disappeared or changed between the listing and their
	// scan; each is recorded as a skipped job with reason not_found.
	Gone int64
	// Clean and Infected count the verdicts.
	Clean, Infected int64
	// Unscannable objects got the verdict skipped: too large, encrypted,
	// over a limit. They are not clean.
	Unscannable int64
	// Errors count error verdicts and failures to read, store or act on
	// an object. A later sweep tries them again.
	Errors int64
	// Unfinished objects were listed but not finished when the sweep was
	// interrupted; a later sweep does them.
	Unfinished int64
	// Bytes is the size of the objects scanned.
	Bytes int64
}

// outcome is how one object ended.
type outcome int

const (
	resumed outcome = iota
	tagged
	outOfScope
	gone
	clean
	infected
	unscannable
	failed
	unfinished
)

// Run sweeps cfg.Target and returns what it did. It returns an error when
// the configuration is incomplete, when the listing fails, or when ctx
// ends (wrapping ctx's error); the Summary counts what was done all the
// same. Scans in flight when ctx ends are cancelled and their jobs left
// for the next sweep.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	s, err := newSweeper(cfg)
	if err != nil {
		return Summary{}, err
	}
	start := time.Now()
	items := make(chan func(context.Context) (outcome, int64), s.cfg.Concurrency)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for do := range items {
				if ctx.Err() != nil {
					// Interrupted: drain without starting anything.
					s.record(unfinished, 0)
					continue
				}
				s.record(do(ctx))
			}
		}()
	}
	// The listing feeds the scans as it goes: a large bucket starts
	// scanning at once, and memory holds a few objects, not the listing.
	submit := func(do func(context.Context) (outcome, int64)) error {
		s.listed()
		select {
		case items <- do:
			return nil
		case <-ctx.Done():
			s.record(unfinished, 0)
			return ctx.Err()
		}
	}
	if s.cfg.Target.IsS3() {
		err = s.listS3(ctx, submit)
	} else {
		err = s.listDir(ctx, submit)
	}
	close(items)
	wg.Wait()
	if s.cfg.Progress != nil {
		s.cfg.Progress.TotalKnown()
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("sweep: %s: interrupted: %w", s.cfg.Target, context.Cause(ctx))
	}
	sum := s.summary()
	s.log.LogAttrs(ctx, slog.LevelInfo, "sweep done", slog.String("target", s.cfg.Target.String()),
		slog.Int64("listed", sum.Listed), slog.Int64("scanned", sum.Scanned), slog.Int64("skipped", sum.Skipped),
		slog.Int64("clean", sum.Clean), slog.Int64("infected", sum.Infected), slog.Int64("errors", sum.Errors),
		slog.Int64("unfinished", sum.Unfinished), slog.Duration("duration", time.Since(start)))
	return sum, err
}

// sweeper is one run's state.
type sweeper struct {
	cfg Config
	log *slog.Logger
	// worker runs each object's or file's job once it is taken up.
	worker *worker.Worker

	mu  sync.Mutex
	sum Summary
}

func newSweeper(cfg Config) (*sweeper, error) {
	var errs []error
	if cfg.Pipeline == nil {
		errs = append(errs, errors.New("pipeline: required"))
	}
	if cfg.Jobs == nil {
		errs = append(errs, errors.New("jobs: required"))
	}
	switch {
	case cfg.Target.IsS3() && cfg.Target.Dir != "":
		errs = append(errs, errors.New("target: a bucket or a folder, not both"))
	case cfg.Target.IsS3():
		if cfg.Lister == nil {
			errs = append(errs, errors.New("lister: required for a bucket"))
		}
		if cfg.Objects == nil {
			errs = append(errs, errors.New("objects: required for a bucket"))
		}
		if tr, ok := cfg.Lister.(TagReader); ok && cfg.Tags == nil {
			cfg.Tags = tr // *S3Lister reads tags too
		}
		if cfg.UntaggedOnly && cfg.Tags == nil {
			errs = append(errs, errors.New("tags: required with untagged-only"))
		}
	case cfg.Target.Dir == "":
		errs = append(errs, errors.New("target: empty"))
	case cfg.UntaggedOnly:
		errs = append(errs, errors.New("untagged-only: applies to buckets, not folders"))
	}
	if cfg.Concurrency < 0 {
		errs = append(errs, errors.New("concurrency: must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sweep: config: %w", err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if oc, ok := cfg.Objects.(objectsConfig); ok {
		c := oc.Config()
		if cfg.TagKey == "" {
			cfg.TagKey = c.TagKey
		}
		if cfg.Exclude == nil {
			cfg.Exclude = c.Excludes
		}
	}
	if cfg.TagKey == "" {
		cfg.TagKey = objstore.DefaultTagKey
	}
	s := &sweeper{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	wc := worker.Config{Jobs: cfg.Jobs, Pipeline: cfg.Pipeline, Objects: cfg.Objects, Logger: s.log}
	if cfg.Notify != nil {
		wc.Notify = s.notify
	}
	w, err := worker.New(wc)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	s.worker = w
	return s, nil
}

func (s *sweeper) listed() {
	s.mu.Lock()
	s.sum.Listed++
	s.mu.Unlock()
	if s.cfg.Progress != nil {
		s.cfg.Progress.AddTotal(1)
	}
}

// record counts one object's outcome; bytes is what was scanned of it.
func (s *sweeper) record(o outcome, bytes int64) {
	s.mu.Lock()
	sum := &s.sum
	switch o {
	case resumed:
		sum.Resumed++
		sum.Skipped++
	case tagged:
		sum.Tagged++
		sum.Skipped++
	case outOfScope:
		sum.OutOfScope++
		sum.Skipped++
	case gone:
		sum.Gone++
		sum.Skipped++
	case clean:
		sum.Clean++
		sum.Scanned++
	case infected:
		sum.Infected++
		sum.Scanned++
	case unscannable:
		sum.Unscannable++
		sum.Scanned++
	case failed:
		sum.Errors++
	case unfinished:
		sum.Unfinished++
	}
	sum.Bytes += bytes
	s.mu.Unlock()
	if s.cfg.Progress != nil {
		s.cfg.Progress.Done(bytes, o == infected)
	}
}

func (s *sweeper) summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// listS3 lists the bucket and submits each object.
func (s *sweeper) listS3(ctx context.Context, submit func(func(context.Context) (outcome, int64)) error) error {
	t := s.cfg.Target
	return s.cfg.Lister.List(ctx, t.Bucket, t.Prefix, func(o Object) error {
		return submit(func(ctx context.Context) (outcome, int64) { return s.object(ctx, o) })
	})
}

// inScope applies the folder-marker rule, the quarantine area and the
// bucket's scope.
func (s *sweeper) inScope(o Object) bool {
	b := s.cfg.Target.Bucket
	if o.Size == 0 && (o.Key == "" || o.Key[len(o.Key)-1] == '/') {
		return false // a console's "folder", not a file
	}
	if s.cfg.Exclude != nil && s.cfg.Exclude(b, o.Key) {
		return false
	}
	for _, sc := range s.cfg.Buckets {
		if sc.Name == b {
			return bucket.Match(sc, o.Key, o.Size)
		}
	}
	return true
}

// stored returns the job a sweep already made for id (nil if none), and
// whether it is final: a resumed sweep skips those.
func (s *sweeper) stored(ctx context.Context, id string) (*scan.Job, bool, error) {
	job, err := s.cfg.Jobs.GetJob(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return job, final(job), nil
}

// final reports whether a stored job needs no new scan: done with a
// verdict other than error. Errors are worth another try, and a skipped
// verdict (too large, gone) would only be reached again.
func final(job *scan.Job) bool {
	return job.Status == scan.Done && job.Verdict.Valid() && job.Verdict != scan.Error
}

// finalTag reports whether a status tag value is a verdict, so that the
// object was scanned; "pending" (and anything else) is not.
func finalTag(v string) bool {
	return scan.Verdict(v).Valid()
}

// object sweeps one listed object: the worker reads it (checking that it
// is still what was listed), scans it, acts on the verdict, records the
// job and notifies, as for an event.
func (s *sweeper) object(ctx context.Context, o Object) (outcome, int64) {
	b := s.cfg.Target.Bucket
	if !s.inScope(o) {
		return outOfScope, 0
	}
	id := JobID(b, o.Key, o.VersionID, o.ETag, o.LastModified)
	log := s.log.With("job", id, "bucket", b, "key", o.Key)
	existing, done, err := s.stored(ctx, id)
	if err != nil {
		return s.fail(ctx, log, "get job", err)
	}
	if done {
		return resumed, 0
	}
	if s.cfg.UntaggedOnly {
		tags, err := s.cfg.Tags.Tags(ctx, b, o.Key, o.VersionID)
		switch {
		case err == nil && finalTag(tags[s.cfg.TagKey]):
			return tagged, 0
		case err != nil && !errors.Is(err, objstore.ErrNotFound):
			return s.fail(ctx, log, "read tags", err)
		}
		// An object gone since the listing is found gone again when the
		// worker reads it, and recorded as such.
	}
	job, err := s.prepare(ctx, existing, &scan.Job{
		ID: id, Status: scan.Queued, Name: path.Base(o.Key), Size: o.Size, CreatedAt: time.Now().UTC(),
		Source: scan.Source{Kind: "s3", Bucket: b, Key: o.Key, VersionID: o.VersionID, ETag: normalizeETag(o.ETag)},
	})
	if errors.Is(err, errTaken) {
		return resumed, 0
	}
	if err != nil {
		return s.fail(ctx, log, "create job", err)
	}
	return s.ended(ctx, log, job, s.worker.ProcessOnce(ctx, job, nil))
}

func normalizeETag(s string) string { return strings.ToLower(strings.Trim(s, `"`)) }

// errTaken means the job was finished by someone else (another sweep, at
// the same time) between the lookup and its creation.
var errTaken = errors.New("sweep: job finished elsewhere")

// prepare returns the stored job to scan: existing when it is queued or
// running (left by an interrupted sweep), existing moved back to queued
// when its verdict was error, else fresh, newly created.
func (s *sweeper) prepare(ctx context.Context, existing, fresh *scan.Job) (*scan.Job, error) {
	if existing == nil {
		err := s.cfg.Jobs.CreateJob(ctx, fresh)
		if err == nil {
			return fresh, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		if existing, err = s.cfg.Jobs.GetJob(ctx, fresh.ID); err != nil {
			return nil, err
		}
		if final(existing) {
			return nil, errTaken
		}
	}
	if existing.Status != scan.Done {
		return existing, nil
	}
	// Done with an error: the pipeline takes a job from queued (or
	// running), and done -> queued is the rescan move.
	existing.Status, existing.Verdict, existing.FinishedAt = scan.Queued, "", nil
	if err := s.cfg.Jobs.UpdateJob(ctx, existing, scan.Done); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, errTaken
		}
		return nil, err
	}
	return existing, nil
}

// ended counts how the worker's run of a job ended (err is what it
// returned).
func (s *sweeper) ended(ctx context.Context, log *slog.Logger, job *scan.Job, err error) (outcome, int64) {
	switch {
	case err == nil:
		return verdict(ctx, log, job)
	case ctx.Err() != nil:
		// Cut short by the interruption: the job is left queued, for the
		// next sweep.
		return unfinished, 0
	case errors.Is(err, store.ErrConflict):
		// Another process moved the job on (a second sweep at once).
		return resumed, 0
	}
	// The job could not be stored, or its effects failed (a denied tag
	// write, no room for the status tag): it is left queued, so the next
	// sweep tries again.
	return s.fail(ctx, log, "scan", err)
}

// verdict counts a finished job by its verdict, and bytes by whether the
// object was read: an object gone or changed before its read is recorded
// as skipped with reason not_found, one that could not be read as an
// error with reason access_denied.
func verdict(ctx context.Context, log *slog.Logger, job *scan.Job) (outcome, int64) {
	switch job.Verdict {
	case scan.Clean:
		return clean, job.Size
	case scan.Infected:
		return infected, job.Size
	case scan.Skipped:
		if job.Reason == scan.ReasonNotFound {
			log.LogAttrs(ctx, slog.LevelDebug, "object skipped", slog.String("why", job.Error))
			return gone, 0
		}
		return unscannable, job.Size
	case scan.Error:
		log.LogAttrs(ctx, slog.LevelWarn, "scan error", slog.String("reason", string(job.Reason)), slog.String("error", job.Error))
		if job.Reason == scan.ReasonAccessDenied {
			return failed, 0
		}
		return failed, job.Size
	}
	log.LogAttrs(ctx, slog.LevelWarn, "scan ended without a verdict", slog.String("verdict", string(job.Verdict)))
	return failed, job.Size
}

// fail logs one object's failure; the sweep goes on.
func (s *sweeper) fail(ctx context.Context, log *slog.Logger, what string, err error) (outcome, int64) {
	if ctx.Err() != nil {
		return unfinished, 0
	}
	log.LogAttrs(ctx, slog.LevelWarn, "sweep: object failed", slog.String("step", what), slog.String("error", err.Error()))
	return failed, 0
}

// notify tells Config.Notify about a finished job. Its failures are
// logged: a sweep has no message to have delivered again.
func (s *sweeper) notify(ctx context.Context, job *scan.Job) error {
	if err := s.cfg.Notify(ctx, job); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "notification failed", slog.String("job", job.ID), slog.String("error", err.Error()))
	}
	return nil
}
