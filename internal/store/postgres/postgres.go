// Package postgres is lazaret's PostgreSQL store driver, for workers that
// share one store across hosts. It talks to the server through a
// github.com/jackc/pgx/v5 connection pool.
//
// Jobs keep their structured parts (source, findings, engines, actions) in
// jsonb columns, and the values ListJobs filters on in indexed scalar
// columns. The schema is migrated at Open from SQL files embedded in the
// binary, under a session advisory lock, so that any number of processes
// can start at once against one database. Tables go to the connection's
// current schema: set search_path in the URL (…?search_path=lazaret) to
// keep lazaret in a schema of its own.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/internal/jobcodec"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx accepts), checks that it answers and applies
// the embedded migrations. A nil logger discards logs.
func Open(ctx context.Context, url string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors repeat the URL, password included.
		return nil, errors.New("postgres: open: invalid connection string")
	}
	if cfg.MaxConns < 2 {
		// migrate holds one connection for its lock while goose uses another.
		return nil, fmt.Errorf("postgres: open: pool_max_conns is %d, need at least 2", cfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &Store{pool: pool, logger: logger}, nil
}

// migrate applies the embedded migrations the database lacks. It holds
// an advisory lock, keyed by the current schema, for the whole run, so
// that processes starting together migrate one after the other and the
// later ones find nothing to do. (goose's own session locker is taken
// only after goose has looked for pending migrations, so first starts
// race to create its version table and the losers retry after a second.)
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (err error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	lock, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer lock.Release()
	if _, err := lock.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext(coalesce(current_schema(), '')))`, migrateLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		_, uerr := lock.Exec(context.WithoutCancel(ctx),
			`SELECT pg_advisory_unlock($1, hashtext(coalesce(current_schema(), '')))`, migrateLockKey)
		if uerr != nil {
			// A session that cannot unlock must not go back to the pool
			// holding the lock.
			lock.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("migrate: unlock: %w", uerr))
		}
	}()

	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		logger.Info("store migrated", "driver", "postgres", "version", r.Source.Version,
			"file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// migrateLockKey is the first key of the migration advisory lock: "lzmg".
const migrateLockKey = 0x6c7a6d67

// Close closes the connection pool, waiting for connections in use. It is
// safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

const jobColumns = `id, status, verdict, reason, name, size, sha256, bucket, source,
	findings, engines, actions, cached, error, attempts, created_at, finished_at`

// querier is what a write needs: the pool, or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateJob inserts a new job; see store.Store.
func (s *Store) CreateJob(ctx context.Context, job *scan.Job) error {
	return s.createJob(ctx, s.pool, job)
}

func (s *Store) createJob(ctx context.Context, q querier, job *scan.Job) error {
	if err := jobcodec.CheckNew(job); err != nil {
		return fmt.Errorf("postgres: create job: %w", err)
	}
	job = jobcodec.CleanJob(job)
	r, err := encodeJob(job)
	if err != nil {
		return fmt.Errorf("postgres: create job %s: %w", job.ID, err)
	}
	tag, err := q.Exec(ctx, `INSERT INTO jobs (`+jobColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (id) DO NOTHING`,
		job.ID, r.status, r.verdict, r.reason, job.Name, job.Size, job.SHA256, job.Source.Bucket, r.source,
		r.findings, r.engines, r.actions, job.Cached, job.Error, job.Attempts, job.CreatedAt, job.FinishedAt)
	if err != nil {
		return fmt.Errorf("postgres: create job %s: %w", job.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create job %s: id exists: %w", job.ID, store.ErrConflict)
	}
	return nil
}

// UpdateJob replaces a stored job if its status is from; see store.Store.
// Every field but ID and CreatedAt is replaced; CreatedAt is kept as it was
// created, so that it stays in step with the ID.
func (s *Store) UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error {
	return s.updateJob(ctx, s.pool, job, from)
}

func (s *Store) updateJob(ctx context.Context, q querier, job *scan.Job, from scan.Status) error {
	if job == nil || job.ID == "" {
		return errors.New("postgres: update job: job has no id")
	}
	if !jobcodec.Clean(job.ID) {
		return fmt.Errorf("postgres: update job %q: %w", job.ID, store.ErrNotFound)
	}
	if err := scan.Transition(from, job.Status); err != nil {
		return s.updateFailed(ctx, job.ID, fmt.Errorf("%w: %w", store.ErrConflict, err))
	}
	if err := jobcodec.CheckVerdict(job); err != nil {
		return fmt.Errorf("postgres: update job: %w", err)
	}
	job = jobcodec.CleanJob(job)
	r, err := encodeJob(job)
	if err != nil {
		return fmt.Errorf("postgres: update job %s: %w", job.ID, err)
	}
	// The compare-and-set: under READ COMMITTED a concurrent UPDATE of the
	// same row waits for this one to commit, then re-checks the WHERE
	// clause against the new row and finds the status changed.
	tag, err := q.Exec(ctx, `UPDATE jobs SET
		status = $3, verdict = $4, reason = $5, name = $6, size = $7, sha256 = $8, bucket = $9,
		source = $10, findings = $11, engines = $12, actions = $13, cached = $14, error = $15,
		attempts = $16, finished_at = $17, updated_at = now()
		WHERE id = $1 AND status = $2`,
		job.ID, string(from),
		r.status, r.verdict, r.reason, job.Name, job.Size, job.SHA256, job.Source.Bucket,
		r.source, r.findings, r.engines, r.actions, job.Cached, job.Error,
		job.Attempts, job.FinishedAt)
	if err != nil {
		return fmt.Errorf("postgres: update job %s: %w", job.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.updateFailed(ctx, job.ID, fmt.Errorf("status is not %q: %w", from, store.ErrConflict))
}

// updateFailed returns ErrNotFound if there is no job id, else conflict.
func (s *Store) updateFailed(ctx context.Context, id string, conflict error) error {
	var status string
	err := s.pool.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, id).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: update job %s: %w", id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: update job %s: %w", id, err)
	}
	return fmt.Errorf("postgres: update job %s (stored status %q): %w", id, status, conflict)
}

// GetJob returns one job or an error wrapping store.ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (*scan.Job, error) {
	if !jobcodec.Clean(id) {
		return nil, fmt.Errorf("postgres: get job %q: %w", id, store.ErrNotFound)
	}
	row := s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id)
	job, err := scanJob(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres: get job %s: %w", id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("postgres: get job %s: %w", id, err)
	}
	return job, nil
}

// ListJobs lists jobs newest first; see store.Store. An unknown verdict or
// status, a negative limit or a cursor the store did not make is an error.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) (store.JobPage, error) {
	limit, after, err := jobcodec.CheckFilter(f)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("postgres: list jobs: %w", err)
	}
	if jobcodec.MatchesNothing(f) {
		return store.JobPage{Jobs: []*scan.Job{}}, nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Verdict != "" {
		where = append(where, "verdict = "+arg(string(f.Verdict)))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.SHA256 != "" {
		where = append(where, "sha256 = "+arg(f.SHA256))
	}
	if f.Bucket != "" {
		where = append(where, "bucket = "+arg(f.Bucket))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(f.Since))
	}
	if after != "" {
		where = append(where, "id < "+arg(after))
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One more than the page tells whether there is a next page.
	q += ` ORDER BY id DESC LIMIT ` + arg(limit+1)

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("postgres: list jobs: %w", err)
	}
	defer rows.Close()
	jobs := make([]*scan.Job, 0, min(limit+1, 64))
	for rows.Next() {
		job, err := scanJob(rows)
		if err != nil {
			return store.JobPage{}, fmt.Errorf("postgres: list jobs: %w", err)
		}
		jobs = append(jobs, job)
	}
	if err := rows.Err(); err != nil {
		return store.JobPage{}, fmt.Errorf("postgres: list jobs: %w", err)
	}
	return jobcodec.Page(jobs, limit), nil
}

// LookupVerdict returns a cached verdict or an error wrapping
// store.ErrNotFound.
func (s *Store) LookupVerdict(ctx context.Context, sha256, enginesKey string) (*scan.CachedVerdict, error) {
	if !jobcodec.Clean(sha256) || !jobcodec.Clean(enginesKey) {
		return nil, fmt.Errorf("postgres: lookup verdict %q: %w", sha256, store.ErrNotFound)
	}
	var (
		v                 scan.CachedVerdict
		verdict           string
		findings, engines []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT sha256, engines_key, verdict, findings, engines, job_id, created_at
		FROM verdicts WHERE sha256 = $1 AND engines_key = $2`, sha256, enginesKey).
		Scan(&v.SHA256, &v.EnginesKey, &verdict, &findings, &engines, &v.JobID, &v.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres: lookup verdict %s: %w", sha256, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("postgres: lookup verdict %s: %w", sha256, err)
	}
	v.Verdict = scan.Verdict(verdict)
	v.CreatedAt = v.CreatedAt.UTC()
	if v.Findings, err = jobcodec.DecodeList[scan.Finding](findings); err != nil {
		return nil, fmt.Errorf("postgres: lookup verdict %s: findings: %w", sha256, err)
	}
	if v.Engines, err = jobcodec.DecodeList[scan.EngineRun](engines); err != nil {
		return nil, fmt.Errorf("postgres: lookup verdict %s: engines: %w", sha256, err)
	}
	return &v, nil
}

// putVerdict stores or replaces the cached verdict for (SHA256,
// EnginesKey). A zero CreatedAt is stored as now.
func (s *Store) putVerdict(ctx context.Context, q querier, v *scan.CachedVerdict) error {
	findings, err := jobcodec.EncodeList(jobcodec.CleanFindings(v.Findings))
	if err != nil {
		return fmt.Errorf("postgres: put verdict %s: findings: %w", v.SHA256, err)
	}
	engines, err := jobcodec.EncodeList(jobcodec.CleanEngines(v.Engines))
	if err != nil {
		return fmt.Errorf("postgres: put verdict %s: engines: %w", v.SHA256, err)
	}
	created := v.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err = q.Exec(ctx, `INSERT INTO verdicts
		(sha256, engines_key, verdict, findings, engines, job_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (sha256, engines_key) DO UPDATE SET
		verdict = excluded.verdict, findings = excluded.findings, engines = excluded.engines,
		job_id = excluded.job_id, created_at = excluded.created_at`,
		v.SHA256, v.EnginesKey, string(v.Verdict), string(findings), string(engines), v.JobID, created)
	if err != nil {
		return fmt.Errorf("postgres: put verdict %s: %w", v.SHA256, err)
	}
	return nil
}

// jobRow is a job's columns that need encoding. JSON goes as text, which
// pgx sends to jsonb columns unchanged.
type jobRow struct {
	status, verdict, reason            string
	source, findings, engines, actions string
}

func encodeJob(job *scan.Job) (jobRow, error) {
	r := jobRow{status: string(job.Status), verdict: string(job.Verdict), reason: string(job.Reason)}
	src, err := jobcodec.EncodeSource(job.Source)
	if err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	r.source = string(src)
	b, err := jobcodec.EncodeList(job.Findings)
	if err != nil {
		return r, fmt.Errorf("findings: %w", err)
	}
	r.findings = string(b)
	if b, err = jobcodec.EncodeList(job.Engines); err != nil {
		return r, fmt.Errorf("engines: %w", err)
	}
	r.engines = string(b)
	if b, err = jobcodec.EncodeList(job.Actions); err != nil {
		return r, fmt.Errorf("actions: %w", err)
	}
	r.actions = string(b)
	return r, nil
}

// scanJob reads the jobColumns of one row.
func scanJob(row pgx.Row) (*scan.Job, error) {
	var (
		j                                  scan.Job
		status, verdict, reason, bucket    string
		source, findings, engines, actions []byte
		finishedAt                         *time.Time
	)
	if err := row.Scan(&j.ID, &status, &verdict, &reason, &j.Name, &j.Size, &j.SHA256, &bucket, &source,
		&findings, &engines, &actions, &j.Cached, &j.Error, &j.Attempts, &j.CreatedAt, &finishedAt); err != nil {
		return nil, err
	}
	j.Status, j.Verdict, j.Reason = scan.Status(status), scan.Verdict(verdict), scan.Reason(reason)
	j.CreatedAt = j.CreatedAt.UTC()
	if finishedAt != nil {
		t := finishedAt.UTC()
		j.FinishedAt = &t
	}
	var err error
	if j.Source, err = jobcodec.DecodeSource(source); err != nil {
		return nil, fmt.Errorf("job %s: source: %w", j.ID, err)
	}
	if j.Findings, err = jobcodec.DecodeList[scan.Finding](findings); err != nil {
		return nil, fmt.Errorf("job %s: findings: %w", j.ID, err)
	}
	if j.Engines, err = jobcodec.DecodeList[scan.EngineRun](engines); err != nil {
		return nil, fmt.Errorf("job %s: engines: %w", j.ID, err)
	}
	if j.Actions, err = jobcodec.DecodeList[string](actions); err != nil {
		return nil, fmt.Errorf("job %s: actions: %w", j.ID, err)
	}
	return &j, nil
}

// SaveJob stores a finished job and caches its verdict; see
// store.Store. The verdicts table holds one entry per content and
// engines key, so a job answered from the cache leaves it as it is.
func (s *Store) SaveJob(ctx context.Context, job *scan.Job, from scan.Status, v *scan.CachedVerdict) error {
	if v != nil {
		if err := jobcodec.CheckJobVerdict(job, v); err != nil {
			return fmt.Errorf("postgres: save job %s: %w", job.ID, err)
		}
		if job.Cached {
			v = nil
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if from == scan.StatusNew {
			err = s.createJob(ctx, tx, job)
		} else {
			err = s.updateJob(ctx, tx, job, from)
		}
		if err != nil || v == nil {
			return err
		}
		return s.putVerdict(ctx, tx, v)
	})
}
