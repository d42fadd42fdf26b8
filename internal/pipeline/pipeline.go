// Package pipeline is lazaret's one scan path. Every intake — the HTTP API,
// S3 events, sweeps, the proxy, the CLI, the operator — hands its bytes to
// Pipeline.Scan, which spools them once while hashing, applies the size
// limit, consults the verdict cache, runs the engines concurrently, decides
// the verdict by the fail-closed rules of package scan, stores the job and
// returns it.
package pipeline

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/store"
)

// Store is what the pipeline needs of a store: a subset of store.Store.
type Store interface {
	UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error
	SaveJob(ctx context.Context, job *scan.Job, from scan.Status, v *scan.CachedVerdict) error
	LookupVerdict(ctx context.Context, sha256, enginesKey string) (*scan.CachedVerdict, error)
}

// Reports keeps the engines' report files (sandbox analyzers'), by the
// SHA-256 a job's engine run names them with.
type Reports interface {
	// Touch marks a report as used now, so that pruning keeps it; one
	// that is not kept any more is an error wrapping store.ErrNotFound
	// or blob.ErrNotFound.
	Touch(ctx context.Context, key string) error
}

// Observer is told about every finished job, for metrics. It must not
// block.
type Observer interface {
	ScanDone(job *scan.Job, duration time.Duration)
}

// Config configures a Pipeline.
type Config struct {
	// Engines scan every sample; at least one is required.
	Engines []scan.Engine
	// Store keeps jobs and cached verdicts. Nil runs without history and
	// without a cache (a one-off CLI scan).
	Store Store
	// MaxSize is the largest sample scanned; larger ones are skipped
	// with reason too_large. 0 means no limit.
	MaxSize int64
	// MemLimit is the size up to which samples are spooled in memory.
	MemLimit int64
	// TempDir holds spool files; "" means the system's.
	TempDir string
	// EngineTimeout bounds each engine's scan of one sample, on top of
	// the engine's own timeout. 0 means 10 minutes.
	EngineTimeout time.Duration
	// Logger receives one debug line per scan; nil discards.
	Logger *slog.Logger
	// Observer, if set, is told about every finished job.
	Observer Observer
	// Reports, if set, keeps the reports that cached verdicts name: a
	// cache hit refreshes them, and one whose report is gone is a miss,
	// so that the analyzer runs again rather than the job naming a report
	// no longer kept.
	Reports Reports
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Pipeline runs scans. It is safe for concurrent use.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	entropy io.Reader
	mu      sync.Mutex // guards entropy
}

// New returns a Pipeline or an error naming what is wrong with cfg.
func New(cfg Config) (*Pipeline, error) {
	if len(cfg.Engines) == 0 {
		return nil, errors.New("pipeline: no engines configured")
	}
	seen := map[string]bool{}
	for _, e := range cfg.Engines {
		if seen[e.Name()] {
			return nil, fmt.Errorf("pipeline: engine name %q used twice", e.Name())
		}
		seen[e.Name()] = true
	}
	if cfg.MaxSize < 0 {
		return nil, errors.New("pipeline: max size must not be negative")
	}
	if cfg.EngineTimeout <= 0 {
		cfg.EngineTimeout = 10 * time.Minute
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.entropy = ulid.Monotonic(rand.Reader, 0)
	return p, nil
}

// Engines returns the configured engines.
func (p *Pipeline) Engines() []scan.Engine { return p.cfg.Engines }

// NewID returns a new job ID: a ULID, so IDs sort by creation time.
func (p *Pipeline) NewID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(p.now()), p.entropy).String()
}

// Request is one sample to scan.
type Request struct {
	// Name is the sample's name (file name, object key).
	Name string
	// Body is read to its end once.
	Body io.Reader
	// Path, instead of Body, names a file that the caller owns and leaves
	// unchanged until Scan returns (a queued upload): it is hashed and
	// read in place rather than copied to a spool file.
	Path string
	// Size is the expected size, or -1 when unknown. A known size over
	// the limit skips the sample without reading it.
	Size int64
	// Source says where the sample came from.
	Source scan.Source
	// Job is an already stored job (queued or running) to complete, or a
	// job not stored yet (status scan.StatusNew) whose ID and source the
	// caller chose; nil creates a new job.
	Job *scan.Job
	// NoCache forces the engines to run even when a cached verdict
	// exists (rescans).
	NoCache bool
	// RequeueOnError applies to stored jobs: when the verdict is error
	// (an engine down, a timeout), the job goes back to queued with its
	// error noted, and Scan returns ErrRequeued so that a queue worker
	// has the message delivered again. Workers leave it unset on the
	// final attempt, which then stores the error as the verdict.
	RequeueOnError bool
	// Keep, if set, receives a copy of the spooled bytes under their
	// SHA-256 (uploads kept so that a rescan can read them again). A
	// failure to keep is logged; it does not change the verdict.
	Keep Keeper
	// Effects, if set, runs after the verdict is decided (on an error
	// verdict only once it is final, that is when the job is not
	// requeued) and before the job is stored: it acts on the verdict (S3
	// tags, delete, quarantine) and returns the actions done, which the
	// job records. When it fails on a stored job with RequeueOnError, the
	// job goes back to queued and Scan returns the error, so the work is
	// retried (effects must be idempotent); otherwise the job is stored
	// done with the failure in its error, and Scan returns it too.
	Effects func(ctx context.Context, job *scan.Job) ([]string, error)
}

// Keeper keeps samples' bytes by content hash.
type Keeper interface {
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
}

// ErrRequeued is returned when a job was put back in the queue; see
// Request.RequeueOnError.
var ErrRequeued = errors.New("pipeline: job requeued after an error")

// ErrStore wraps failures to persist a job: the scan itself completed, and
// the returned job is valid, but it is not stored.
var ErrStore = errors.New("pipeline: store")

// Scan runs one sample through the pipeline and returns its finished job.
// The job is always returned, with a verdict; the error is non-nil only
// when the job could not be stored (wrapping ErrStore) — callers that must
// not lose work (queue consumers) then leave their message unacknowledged.
func (p *Pipeline) Scan(ctx context.Context, req Request) (*scan.Job, error) {
	start := p.now()
	job, from, err := p.begin(ctx, req)
	if err != nil {
		return job, err
	}
	cv := p.run(ctx, req, job)
	if req.RequeueOnError && job.Verdict == scan.Error {
		return job, p.requeue(ctx, job, from, ErrRequeued)
	}
	fin := p.now().UTC()
	job.Status = scan.Done
	job.FinishedAt = &fin
	var effectsErr error
	if req.Effects != nil {
		actions, err := req.Effects(ctx, job)
		job.Actions = append(job.Actions[:0], actions...)
		if err != nil {
			effectsErr = fmt.Errorf("pipeline: effects: %w", err)
			if req.RequeueOnError {
				return job, p.requeue(ctx, job, from, effectsErr)
			}
			// A new job or a final attempt: the verdict stands and is
			// stored, with the failed effects noted in the job's error.
		}
	}
	if p.cfg.Observer != nil {
		p.cfg.Observer.ScanDone(job, fin.Sub(start))
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "scan done",
		slog.String("job", job.ID), slog.String("name", job.Name), slog.String("sha256", job.SHA256),
		slog.String("verdict", string(job.Verdict)), slog.String("reason", string(job.Reason)),
		slog.Bool("cached", job.Cached), slog.Duration("duration", fin.Sub(start)))
	if effectsErr != nil {
		job.Error = effectsErr.Error()
	}
	if p.cfg.Store == nil {
		return job, effectsErr
	}
	// Persist even if the caller's context ended: the work is done and a
	// verdict is worth keeping. A short deadline of its own keeps a dead
	// store from hanging the caller.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err = p.cfg.Store.SaveJob(sctx, job, from, cv); err != nil {
		return job, errors.Join(fmt.Errorf("%w: save job %s: %w", ErrStore, job.ID, err), effectsErr)
	}
	return job, effectsErr
}

// requeue puts a stored job back in the queue with why, and returns why
// (or the store's error).
func (p *Pipeline) requeue(ctx context.Context, job *scan.Job, from scan.Status, why error) error {
	job.Status, job.Verdict, job.FinishedAt = scan.Queued, "", nil
	if !errors.Is(why, ErrRequeued) { // an engine's error is already in job.Error
		job.Error = why.Error()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// A job not stored yet is stored now, queued, so that its attempts
	// are counted across deliveries.
	if err := p.cfg.Store.SaveJob(sctx, job, from, nil); err != nil {
		return fmt.Errorf("%w: requeue job %s: %w", ErrStore, job.ID, err)
	}
	return why
}

// begin prepares the job and, for a stored one, marks it running. It
// returns the status the job is stored in (StatusNew if not stored).
func (p *Pipeline) begin(ctx context.Context, req Request) (*scan.Job, scan.Status, error) {
	if req.Job == nil {
		src := req.Source
		if src.Kind == "" {
			src.Kind = "upload"
		}
		return &scan.Job{
			ID:        p.NewID(),
			Status:    scan.Running,
			Name:      req.Name,
			Source:    src,
			CreatedAt: p.now().UTC(),
			Attempts:  1,
		}, scan.StatusNew, nil
	}
	job := req.Job
	switch job.Status {
	case scan.StatusNew:
		if req.RequeueOnError && p.cfg.Store == nil {
			return job, scan.StatusNew, errors.New("pipeline: requeueing a job needs a store")
		}
		job.Status = scan.Running
		job.Attempts++
		if job.CreatedAt.IsZero() {
			job.CreatedAt = p.now().UTC()
		}
		return job, scan.StatusNew, nil
	case scan.Queued, scan.Done, scan.Running:
		// Running means a redelivery: the worker that started the job
		// died or went silent. This is a new attempt all the same.
		if p.cfg.Store == nil {
			return job, scan.StatusNew, errors.New("pipeline: a stored job needs a store")
		}
		from := job.Status
		job.Status = scan.Running
		job.Attempts++
		if err := p.cfg.Store.UpdateJob(ctx, job, from); err != nil {
			job.Status = from
			job.Attempts--
			return job, from, fmt.Errorf("%w: start job %s: %w", ErrStore, job.ID, err)
		}
		return job, scan.Running, nil
	}
	return job, job.Status, fmt.Errorf("pipeline: job %s has status %q", job.ID, job.Status)
}

// run fills in the job's verdict, and returns the verdict to cache with
// the job (nil when there is none to cache): the one the engines made, or
// the cached one the job was answered with. It never fails: every failure becomes a
// verdict that is not clean.
func (p *Pipeline) run(ctx context.Context, req Request, job *scan.Job) *scan.CachedVerdict {
	job.Verdict, job.Reason, job.Error = "", scan.ReasonNone, ""
	job.Findings, job.Engines, job.Cached = nil, nil, false
	if req.Size >= 0 {
		job.Size = req.Size
	}
	if p.cfg.MaxSize > 0 && req.Size > p.cfg.MaxSize {
		p.skipTooLarge(job)
		return nil
	}
	if req.Body == nil && req.Path == "" {
		job.Verdict, job.Reason, job.Error = scan.Error, scan.ReasonIO, "no sample body"
		return nil
	}
	opts := spool.Options{MemLimit: p.cfg.MemLimit, MaxSize: p.cfg.MaxSize, Dir: p.cfg.TempDir, SizeHint: max(req.Size, 0)}
	var body *spool.Body
	var err error
	if req.Path != "" {
		body, err = spool.File(ctx, req.Path, opts)
	} else {
		body, err = spool.New(ctx, req.Body, opts)
	}
	if err != nil {
		if errors.Is(err, spool.ErrTooLarge) {
			p.skipTooLarge(job)
		} else {
			job.Verdict, job.Reason, job.Error = scan.Error, scan.ReadReason(err), err.Error()
		}
		return nil
	}
	defer body.Close()
	job.Size, job.SHA256 = body.Size(), body.SHA256()
	if req.Keep != nil {
		p.keep(ctx, req.Keep, body)
	}
	sample := body.Sample(job.Name)

	versions, key := p.versions(ctx, job.Source.Engine)
	if key != "" && p.cfg.Store != nil && !req.NoCache {
		cv, err := p.cfg.Store.LookupVerdict(ctx, job.SHA256, key)
		switch {
		case err == nil && (cv.Verdict == scan.Clean || cv.Verdict == scan.Infected) && p.reportsKept(ctx, cv):
			fillFromCache(job, cv)
			// Saved with the job, so that the store knows the job holds
			// this verdict (SQLite's cache is the newest such job).
			return cv
		case err != nil && !errors.Is(err, store.ErrNotFound):
			// A cache that cannot answer is a miss, not a failure.
			p.log.LogAttrs(ctx, slog.LevelWarn, "verdict cache lookup failed", slog.String("error", err.Error()))
		}
	}

	results := p.scanAll(ctx, sample, versions, job.Source.Engine)
	combined := make([]scan.Result, len(results))
	for i, r := range results {
		combined[i] = r.result
		job.Engines = append(job.Engines, scan.EngineRun{
			Name: r.name, Version: r.version, Verdict: r.result.Verdict, Reason: r.result.Reason,
			Detail: r.result.Detail, DurationMS: r.dur.Milliseconds(), Report: r.result.Report,
		})
		job.Findings = append(job.Findings, r.result.Findings...)
	}
	job.Verdict, job.Reason = scan.Combine(combined)
	if len(results) == 0 {
		job.Error = fmt.Sprintf("no configured engine named %q", job.Source.Engine)
		if job.Source.Engine == "" {
			job.Error = "every engine is on_demand: a job must name one (POST /{engine}/upload)"
		}
		return nil
	}
	if job.Verdict == scan.Error || job.Verdict == scan.Skipped {
		job.Error = firstDetail(results, job.Reason)
	}
	if key == "" || (job.Verdict != scan.Clean && job.Verdict != scan.Infected) {
		return nil
	}
	return &scan.CachedVerdict{SHA256: job.SHA256, EnginesKey: key, Verdict: job.Verdict,
		Findings: job.Findings, Engines: job.Engines, JobID: job.ID, CreatedAt: p.now().UTC()}
}

// keep copies the spooled bytes to k under their SHA-256.
func (p *Pipeline) keep(ctx context.Context, k Keeper, body *spool.Body) {
	r, err := body.Open()
	if err == nil {
		_, err = k.Put(ctx, body.SHA256(), r)
		r.Close()
	}
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "keeping the sample failed", slog.String("sha256", body.SHA256()), slog.String("error", err.Error()))
	}
}

func (p *Pipeline) skipTooLarge(job *scan.Job) {
	job.Verdict, job.Reason = scan.Skipped, scan.ReasonTooLarge
	job.Error = fmt.Sprintf("sample is larger than the limit of %d bytes", p.cfg.MaxSize)
}

func firstDetail(rs []engineResult, reason scan.Reason) string {
	for _, r := range rs {
		if r.result.Reason == reason && r.result.Detail != "" {
			return r.name + ": " + r.result.Detail
		}
	}
	return string(reason)
}

// Lookup returns the cached verdict for content under the engines'
// current versions, as a finished job marked cached, or an error wrapping
// store.ErrNotFound when there is none (or no store, or an engine that
// cannot tell its version). Clients ask this before uploading.
func (p *Pipeline) Lookup(ctx context.Context, sha256 string) (*scan.Job, error) {
	if p.cfg.Store == nil {
		return nil, fmt.Errorf("pipeline: no store: %w", store.ErrNotFound)
	}
	_, key := p.versions(ctx, "")
	if key == "" {
		return nil, fmt.Errorf("pipeline: engine versions unknown: %w", store.ErrNotFound)
	}
	cv, err := p.cfg.Store.LookupVerdict(ctx, sha256, key)
	if err != nil {
		return nil, err
	}
	if !p.reportsKept(ctx, cv) {
		// The client is to upload the sample, for the analyzer to write
		// its report again.
		return nil, fmt.Errorf("pipeline: a report of the cached verdict is gone: %w", store.ErrNotFound)
	}
	job := &scan.Job{ID: cv.JobID, Status: scan.Done, SHA256: cv.SHA256, Source: scan.Source{Kind: "cache"},
		CreatedAt: cv.CreatedAt, FinishedAt: &cv.CreatedAt}
	fillFromCache(job, cv)
	return job, nil
}

// EnginesKey returns the verdict cache key part for the engines' current
// versions (see scan.EnginesKey), or an error when an engine cannot tell
// its version.
func (p *Pipeline) EnginesKey(ctx context.Context) (string, error) {
	_, key := p.versions(ctx, "")
	if key == "" {
		return "", errors.New("pipeline: an engine cannot tell its version")
	}
	return key, nil
}

// reportsKept refreshes the reports a cached verdict names and reports
// whether all of them are still kept. A report it cannot check (an
// error other than not found) counts as kept: the job then names it, and
// GET /v1/jobs/{id}/report tells what became of it.
func (p *Pipeline) reportsKept(ctx context.Context, cv *scan.CachedVerdict) bool {
	if p.cfg.Reports == nil {
		return true
	}
	for _, e := range cv.Engines {
		if e.Report == nil {
			continue
		}
		err := p.cfg.Reports.Touch(ctx, e.Report.SHA256)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, blob.ErrNotFound) {
			return false
		}
		if err != nil {
			p.log.LogAttrs(ctx, slog.LevelWarn, "report of a cached verdict not refreshed",
				slog.String("engine", e.Name), slog.String("report", e.Report.SHA256), slog.String("error", err.Error()))
		}
	}
	return true
}

func fillFromCache(job *scan.Job, cv *scan.CachedVerdict) {
	job.Verdict, job.Findings, job.Cached = cv.Verdict, cv.Findings, true
	job.Engines = make([]scan.EngineRun, len(cv.Engines))
	for i, e := range cv.Engines {
		e.DurationMS = 0
		job.Engines[i] = e
	}
}

// versions asks every engine for its version. The cache key is "" when
// any engine cannot say: without every version a cached verdict cannot be
// trusted, and none is stored.
func (p *Pipeline) versions(ctx context.Context, only string) ([]string, string) {
	out := make([]string, len(p.cfg.Engines))
	var evs []scan.EngineVersion
	ok := true
	for i, e := range p.cfg.Engines {
		if !selected(e, only) {
			continue
		}
		v, err := e.Version(ctx)
		if err != nil || v == "" {
			ok = false
			continue
		}
		out[i] = v
		evs = append(evs, scan.EngineVersion{Name: e.Name(), Version: v})
	}
	if !ok || len(evs) == 0 {
		return out, ""
	}
	return out, scan.EnginesKey(evs)
}

// selected reports whether engine e scans a job that names engine only
// ("" for none): the named engine alone, or else every engine that is not
// on demand (see scan.OnDemander).
func selected(e scan.Engine, only string) bool {
	if only != "" {
		return e.Name() == only
	}
	od, ok := e.(scan.OnDemander)
	return !ok || !od.OnDemand()
}

type engineResult struct {
	idx           int
	name, version string
	result        scan.Result
	dur           time.Duration
}

// scanAll runs every engine on the sample concurrently, each under its
// own deadline.
func (p *Pipeline) scanAll(ctx context.Context, s scan.Sample, versions []string, only string) []engineResult {
	out := make([]engineResult, 0, len(p.cfg.Engines))
	one := func(i int, e scan.Engine) engineResult {
		ectx, cancel := context.WithTimeout(ctx, p.cfg.EngineTimeout)
		defer cancel()
		t0 := time.Now()
		r, err := safeScan(ectx, e, s)
		if err == nil && ectx.Err() != nil && r.Verdict == scan.Clean {
			// An engine that claims clean after its deadline passed
			// may not have read the whole sample.
			err = ectx.Err()
		}
		return engineResult{idx: i, name: e.Name(), version: versions[i], result: scan.Normalize(e.Name(), r, err), dur: time.Since(t0)}
	}
	var run []int
	for i, e := range p.cfg.Engines {
		if selected(e, only) {
			run = append(run, i)
		}
	}
	if len(run) == 1 {
		// One engine, the common case: no goroutine to hand off to.
		return append(out, one(run[0], p.cfg.Engines[run[0]]))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, i := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := one(i, p.cfg.Engines[i])
			mu.Lock()
			out = append(out, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Configuration order, whatever order the engines finished in.
	slices.SortFunc(out, func(a, b engineResult) int { return a.idx - b.idx })
	return out
}

// safeScan turns an engine's panic into an error: one bad engine must not
// take the process down, and must not read as clean.
func safeScan(ctx context.Context, e scan.Engine, s scan.Sample) (r scan.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			r, err = scan.Result{}, fmt.Errorf("%s: panic: %v", e.Name(), v)
		}
	}()
	return e.Scan(ctx, s)
}
