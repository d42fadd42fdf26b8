// Package sqlite is lazaret's embedded store driver: jobs and the verdict
// cache in one SQLite file, through the pure Go modernc.org/sqlite (no cgo).
// The cache is the jobs table itself: a job row keeps the engines key its
// clean or infected verdict was made under, so a scan writes one row.
//
// The file runs in WAL mode with synchronous=NORMAL, a busy timeout and
// foreign keys on. SQLite allows one writer at a time, so the Store holds
// one connection for every write and a pool of read-only connections for
// reads: concurrent writers in one process queue in Go instead of failing
// with SQLITE_BUSY, and readers never wait for them. Writers in other
// processes (a `lazaret rescan` next to `lazaret serve`) wait up to the
// busy timeout.
//
// The schema is migrated at Open from SQL files embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/internal/jobcodec"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MemoryPath is the path that opens a private in-memory database, gone at
// Close. It serves tests and throwaway runs; it has one connection, so
// reads and writes take turns.
const MemoryPath = ":memory:"

// busyTimeout is how long a statement waits for another process's write
// lock before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is the SQLite store. It is safe for concurrent use.
type Store struct {
	writeDB *sql.DB // exactly one connection: every write goes through it
	reader  *sql.DB // read-only connections; the writer itself in memory mode
	logger  *slog.Logger
	stmts   statements

	seen *seen // SHA-256s with a cached verdict, to skip misses

	writes     chan *writeOp // to the group-commit writer
	stop       chan struct{}
	writerDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the SQLite database at path and
// applies the embedded migrations. Path MemoryPath (":memory:") opens a
// private in-memory database. A nil logger discards logs.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if strings.ContainsRune(path, '?') {
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("sqlite: open %s: path must not contain '?'", path)
	}
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		busyTimeout.Milliseconds())

	// BEGIN IMMEDIATE: a transaction takes the write lock when it starts,
	// so it cannot fail with SQLITE_BUSY halfway when it upgrades.
	writer, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	s := &Store{writeDB: writer, reader: writer, logger: logger,
		writes: make(chan *writeOp, maxBatch), stop: make(chan struct{}), writerDone: make(chan struct{})}
	go s.runWriter()

	if err := s.init(ctx, path, pragmas); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, path, pragmas string) error {
	var mode string
	if err := s.writeDB.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if path != MemoryPath && !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, not wal", path, mode)
	}
	if err := migrate(ctx, s.writeDB, s.logger); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if path != MemoryPath {
		// Every connection to ":memory:" is a database of its own, so
		// there the writer reads too.
		reader, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
		if err != nil {
			return fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		reader.SetMaxOpenConns(n)
		reader.SetMaxIdleConns(n)
		s.reader = reader
	}
	if err := s.prepare(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.seen = newSeen()
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		<-s.stop // Close
		cancel()
	}()
	go s.loadSeen(lctx)
	return nil
}

// migrate applies the embedded migrations that db lacks.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Not p.Close: it would close db.
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		logger.Info("store migrated", "driver", "sqlite", "version", r.Source.Version,
			"file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Writes already queued are abandoned with an error by write;
		// the writer finishes the batch it is running.
		close(s.stop)
		<-s.writerDone
		s.closeErr = s.stmts.close()
		if s.reader != s.writeDB {
			s.closeErr = errors.Join(s.closeErr, s.reader.Close())
		}
		s.closeErr = errors.Join(s.closeErr, s.writeDB.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

const jobColumns = `id, status, verdict, reason, name, size, sha256, bucket, source,
	findings, engines, actions, cached, error, attempts, created_at, finished_at`

// lookupVerdictSQL reads the verdict cache: the newest job for the
// content with a verdict made or answered under these engines, through
// the sha256 index walked back from the newest entry (normally the first
// is the one).
const lookupVerdictSQL = `SELECT sha256, engines_key, verdict, findings, engines, id, finished_at
	FROM jobs WHERE sha256 = ? AND engines_key = ? AND status = 'done' AND verdict IN ('clean', 'infected')
	ORDER BY id DESC LIMIT 1`

// statements are the hot queries, prepared once per connection: SQLite
// spends more time compiling these than running them.
type statements struct {
	insertJob, updateJob, jobStatus                 *sql.Stmt // on the writer
	insertDelivery, updateDelivery, claimDeliveries *sql.Stmt // on the writer
	getJob, lookupVerdict, getJobStatusReader       *sql.Stmt // on the reader
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		db   *sql.DB
		sql  string
	}{
		{&s.stmts.insertJob, s.writeDB, `INSERT INTO jobs (` + jobColumns + `, updated_at, engines_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`},
		{&s.stmts.updateJob, s.writeDB, `UPDATE jobs SET
			status = ?, verdict = ?, reason = ?, name = ?, size = ?, sha256 = ?, bucket = ?, source = ?,
			findings = ?, engines = ?, actions = ?, cached = ?, error = ?, attempts = ?,
			finished_at = ?, updated_at = ?, engines_key = ?
			WHERE id = ? AND status = ?`},
		{&s.stmts.jobStatus, s.writeDB, `SELECT status FROM jobs WHERE id = ?`},
		{&s.stmts.insertDelivery, s.writeDB, `INSERT INTO deliveries (` + deliveryColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		{&s.stmts.updateDelivery, s.writeDB, `UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE id = ?`},
		// The single writer makes select-and-update one atomic step.
		{&s.stmts.claimDeliveries, s.writeDB, `UPDATE deliveries SET next_at = ?
			WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?)
			RETURNING ` + deliveryColumns},
		{&s.stmts.getJob, s.reader, `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`},
		{&s.stmts.getJobStatusReader, s.reader, `SELECT status FROM jobs WHERE id = ?`},
		{&s.stmts.lookupVerdict, s.reader, lookupVerdictSQL},
	} {
		stmt, err := p.db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (st *statements) close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{st.insertJob, st.updateJob, st.jobStatus, st.insertDelivery, st.updateDelivery,
		st.claimDeliveries, st.getJob, st.lookupVerdict, st.getJobStatusReader} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// CreateJob inserts a new job; see store.Store.
func (s *Store) CreateJob(ctx context.Context, job *scan.Job) error {
	fn, err := s.createJobWrite(job, "")
	if err != nil {
		return err
	}
	return s.write(ctx, fn)
}

// createJobWrite checks and encodes a new job and returns the write that
// inserts it.
// createJobWrite checks and encodes a new job and returns the write that
// inserts it; enginesKey, if not "", caches the job's verdict.
func (s *Store) createJobWrite(job *scan.Job, enginesKey string) (writeFunc, error) {
	if err := jobcodec.CheckNew(job); err != nil {
		return nil, fmt.Errorf("sqlite: create job: %w", err)
	}
	job = jobcodec.CleanJob(job)
	r, err := encodeJob(job)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create job %s: %w", job.ID, err)
	}
	return func(ctx context.Context, tx conn) error {
		res, err := tx.StmtContext(ctx, s.stmts.insertJob).ExecContext(ctx,
			job.ID, r.status, r.verdict, r.reason, job.Name, job.Size, job.SHA256, job.Source.Bucket, r.source,
			r.findings, r.engines, r.actions, job.Cached, job.Error, job.Attempts, r.createdAt, r.finishedAt, r.updatedAt,
			enginesKey)
		if err != nil {
			return fmt.Errorf("sqlite: create job %s: %w", job.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: create job %s: %w", job.ID, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: create job %s: id exists: %w", job.ID, store.ErrConflict)
		}
		return nil
	}, nil
}

// UpdateJob replaces a stored job if its status is from; see store.Store.
// Every field but ID and CreatedAt is replaced; CreatedAt is kept as it was
// created, so that it stays in step with the ID.
func (s *Store) UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error {
	fn, err := s.updateJobWrite(ctx, job, from, "")
	if err != nil {
		return err
	}
	return s.write(ctx, fn)
}

// updateJobWrite checks and encodes a job update and returns the write
// that applies it (the compare-and-set). The row's engines key becomes
// enginesKey: "" when the update caches no verdict, since the key
// describes the verdict the row holds now.
func (s *Store) updateJobWrite(ctx context.Context, job *scan.Job, from scan.Status, enginesKey string) (writeFunc, error) {
	if job == nil || job.ID == "" {
		return nil, errors.New("sqlite: update job: job has no id")
	}
	if !jobcodec.Clean(job.ID) {
		return nil, fmt.Errorf("sqlite: update job %q: %w", job.ID, store.ErrNotFound)
	}
	if err := scan.Transition(from, job.Status); err != nil {
		return nil, s.updateFailed(ctx, job.ID, fmt.Errorf("%w: %w", store.ErrConflict, err))
	}
	if err := jobcodec.CheckVerdict(job); err != nil {
		return nil, fmt.Errorf("sqlite: update job: %w", err)
	}
	job = jobcodec.CleanJob(job)
	r, err := encodeJob(job)
	if err != nil {
		return nil, fmt.Errorf("sqlite: update job %s: %w", job.ID, err)
	}
	// The compare-and-set: the row changes only if it still has status
	// from. The single writer connection makes it atomic in this process
	// and SQLite's write lock across processes.
	return func(ctx context.Context, tx conn) error {
		res, err := tx.StmtContext(ctx, s.stmts.updateJob).ExecContext(ctx,
			r.status, r.verdict, r.reason, job.Name, job.Size, job.SHA256, job.Source.Bucket, r.source,
			r.findings, r.engines, r.actions, job.Cached, job.Error, job.Attempts,
			r.finishedAt, r.updatedAt, enginesKey,
			job.ID, string(from))
		if err != nil {
			return fmt.Errorf("sqlite: update job %s: %w", job.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite: update job %s: %w", job.ID, err)
		}
		if n == 1 {
			return nil
		}
		return s.jobStatusConflict(ctx, tx.StmtContext(ctx, s.stmts.jobStatus), job.ID, fmt.Errorf("status is not %q: %w", from, store.ErrConflict))
	}, nil
}

// updateFailed returns ErrNotFound if there is no job id, else conflict.
func (s *Store) updateFailed(ctx context.Context, id string, conflict error) error {
	return s.jobStatusConflict(ctx, s.stmts.getJobStatusReader, id, conflict)
}

// jobStatusConflict explains a failed update: not found, or a conflict
// with the stored status.
func (s *Store) jobStatusConflict(ctx context.Context, q *sql.Stmt, id string, conflict error) error {
	var status string
	err := q.QueryRowContext(ctx, id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: update job %s: %w", id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: update job %s: %w", id, err)
	}
	return fmt.Errorf("sqlite: update job %s (stored status %q): %w", id, status, conflict)
}

// GetJob returns one job or an error wrapping store.ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (*scan.Job, error) {
	if !jobcodec.Clean(id) {
		return nil, fmt.Errorf("sqlite: get job %q: %w", id, store.ErrNotFound)
	}
	row := s.stmts.getJob.QueryRowContext(ctx, id)
	job, err := scanJob(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: get job %s: %w", id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("sqlite: get job %s: %w", id, err)
	}
	return job, nil
}

// ListJobs lists jobs newest first; see store.Store. An unknown verdict or
// status, a negative limit or a cursor this driver did not make is an
// error.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) (store.JobPage, error) {
	limit, after, err := jobcodec.CheckFilter(f)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("sqlite: list jobs: %w", err)
	}
	if jobcodec.MatchesNothing(f) {
		return store.JobPage{Jobs: []*scan.Job{}}, nil
	}
	q, args := listQuery(f, after, limit)
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return store.JobPage{}, fmt.Errorf("sqlite: list jobs: %w", err)
	}
	defer rows.Close()
	jobs := make([]*scan.Job, 0, min(limit+1, 64))
	for rows.Next() {
		job, err := scanJob(rows)
		if err != nil {
			return store.JobPage{}, fmt.Errorf("sqlite: list jobs: %w", err)
		}
		jobs = append(jobs, job)
	}
	if err := rows.Err(); err != nil {
		return store.JobPage{}, fmt.Errorf("sqlite: list jobs: %w", err)
	}
	return jobcodec.Page(jobs, limit), nil
}

// listQuery is ListJobs' query for a checked filter: one more row than
// limit, newest first, after the cursor's id.
func listQuery(f store.JobFilter, after string, limit int) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	// The partial indexes (migration 00003) serve these filters only when
	// the query repeats their conditions.
	switch {
	case f.Verdict == scan.Clean:
		add("verdict = ?", string(f.Verdict))
	case f.Verdict != "":
		add("verdict = ? AND verdict <> 'clean'", string(f.Verdict))
	}
	switch {
	case f.Status == scan.Done:
		add("status = ?", string(f.Status))
	case f.Status != "":
		add("status = ? AND status <> 'done'", string(f.Status))
	}
	if f.SHA256 != "" {
		add("sha256 = ?", f.SHA256)
	}
	if f.Bucket != "" {
		add("bucket = ? AND bucket <> ''", f.Bucket)
	}
	if !f.Since.IsZero() {
		// IDs are ULIDs that begin with their creation time, so an id
		// range (with a minute's margin for the clock read between
		// making the ID and stamping created_at) narrows the scan
		// without an index on created_at, which decides.
		add("id >= ? AND created_at >= ?", jobcodec.MinID(f.Since.Add(-time.Minute)), f.Since.UnixMicro())
	}
	if after != "" {
		add("id < ?", after)
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1) // one more tells whether there is a next page
	return q, args
}

// LookupVerdict returns a cached verdict or an error wrapping
// store.ErrNotFound.
func (s *Store) LookupVerdict(ctx context.Context, sha256, enginesKey string) (*scan.CachedVerdict, error) {
	if !jobcodec.Clean(sha256) || !jobcodec.Clean(enginesKey) {
		return nil, fmt.Errorf("sqlite: lookup verdict %q: %w", sha256, store.ErrNotFound)
	}
	if s.seen.absent(sha256) {
		return nil, fmt.Errorf("sqlite: lookup verdict %s: %w", sha256, store.ErrNotFound)
	}
	var (
		v                 scan.CachedVerdict
		verdict           string
		findings, engines string
		createdAt         sql.NullInt64
	)
	err := s.stmts.lookupVerdict.QueryRowContext(ctx, sha256, enginesKey).
		Scan(&v.SHA256, &v.EnginesKey, &verdict, &findings, &engines, &v.JobID, &createdAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: lookup verdict %s: %w", sha256, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("sqlite: lookup verdict %s: %w", sha256, err)
	}
	v.Verdict = scan.Verdict(verdict)
	v.CreatedAt = fromMicros(createdAt.Int64)
	if v.Findings, err = decodeList[scan.Finding](findings); err != nil {
		return nil, fmt.Errorf("sqlite: lookup verdict %s: findings: %w", sha256, err)
	}
	if v.Engines, err = decodeList[scan.EngineRun](engines); err != nil {
		return nil, fmt.Errorf("sqlite: lookup verdict %s: engines: %w", sha256, err)
	}
	return &v, nil
}

// jobRow is a job's columns that need encoding.
type jobRow struct {
	status, verdict, reason            string
	source, findings, engines, actions string
	createdAt, updatedAt               int64
	finishedAt                         sql.NullInt64
}

func encodeJob(job *scan.Job) (jobRow, error) {
	r := jobRow{
		status:    string(job.Status),
		verdict:   string(job.Verdict),
		reason:    string(job.Reason),
		createdAt: job.CreatedAt.UnixMicro(),
		updatedAt: time.Now().UnixMicro(),
	}
	if job.FinishedAt != nil {
		r.finishedAt = sql.NullInt64{Int64: job.FinishedAt.UnixMicro(), Valid: true}
	}
	src, err := jobcodec.EncodeSource(job.Source)
	if err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	r.source = string(src)
	if r.findings, err = encodeList(job.Findings); err != nil {
		return r, fmt.Errorf("findings: %w", err)
	}
	if r.engines, err = encodeList(job.Engines); err != nil {
		return r, fmt.Errorf("engines: %w", err)
	}
	if r.actions, err = encodeList(job.Actions); err != nil {
		return r, fmt.Errorf("actions: %w", err)
	}
	return r, nil
}

// scanJob reads the jobColumns of one row.
func scanJob(row interface{ Scan(...any) error }) (*scan.Job, error) {
	var (
		j                                  scan.Job
		status, verdict, reason            string
		source, findings, engines, actions string
		createdAt                          int64
		finishedAt                         sql.NullInt64
		bucket                             string
	)
	if err := row.Scan(&j.ID, &status, &verdict, &reason, &j.Name, &j.Size, &j.SHA256, &bucket, &source,
		&findings, &engines, &actions, &j.Cached, &j.Error, &j.Attempts, &createdAt, &finishedAt); err != nil {
		return nil, err
	}
	j.Status, j.Verdict, j.Reason = scan.Status(status), scan.Verdict(verdict), scan.Reason(reason)
	j.CreatedAt = fromMicros(createdAt)
	if finishedAt.Valid {
		t := fromMicros(finishedAt.Int64)
		j.FinishedAt = &t
	}
	var err error
	if j.Source, err = jobcodec.DecodeSource([]byte(source)); err != nil {
		return nil, fmt.Errorf("job %s: source: %w", j.ID, err)
	}
	if j.Findings, err = decodeList[scan.Finding](findings); err != nil {
		return nil, fmt.Errorf("job %s: findings: %w", j.ID, err)
	}
	if j.Engines, err = decodeList[scan.EngineRun](engines); err != nil {
		return nil, fmt.Errorf("job %s: engines: %w", j.ID, err)
	}
	if j.Actions, err = decodeList[string](actions); err != nil {
		return nil, fmt.Errorf("job %s: actions: %w", j.ID, err)
	}
	return &j, nil
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// encodeList encodes a slice as JSON text; nil is [].
func encodeList[T any](v []T) (string, error) {
	b, err := jobcodec.EncodeList(v)
	return string(b), err
}

// decodeList decodes JSON text; it never returns nil.
func decodeList[T any](s string) ([]T, error) { return jobcodec.DecodeList[T]([]byte(s)) }

// SaveJob stores a finished job (created if from is scan.StatusNew, else
// updated with the compare-and-set of UpdateJob) and, if v is not nil,
// its cached verdict, in one transaction: both or neither.
// SaveJob stores a finished job and caches its verdict; see store.Store.
// The cache is the job row itself: its engines key column.
func (s *Store) SaveJob(ctx context.Context, job *scan.Job, from scan.Status, v *scan.CachedVerdict) error {
	key := ""
	if v != nil {
		if err := jobcodec.CheckJobVerdict(job, v); err != nil {
			return fmt.Errorf("sqlite: save job %s: %w", job.ID, err)
		}
		key = v.EnginesKey
	}
	var fn writeFunc
	var err error
	if from == scan.StatusNew {
		fn, err = s.createJobWrite(job, key)
	} else {
		fn, err = s.updateJobWrite(ctx, job, from, key)
	}
	if err != nil {
		return err
	}
	err = s.write(ctx, fn)
	if err == nil && v != nil {
		s.seen.add(v.SHA256)
	}
	return err
}
