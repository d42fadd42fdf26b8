// Package store defines where lazaret keeps jobs and cached verdicts: one
// interface, implemented by the sqlite (embedded default) and postgres
// drivers, both held to the same conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// Sentinel errors that callers branch on. Drivers wrap them.
var (
	// ErrNotFound: no such job or cached verdict.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the job is not in the status the caller expected (or
	// the move is illegal), or a job with that ID already exists.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: a filter or cursor that cannot be used (an unknown
	// verdict, a cursor that was cut or edited).
	ErrInvalid = errors.New("store: invalid filter")
)

// Store keeps jobs and the verdict cache. Implementations are safe for
// concurrent use. Times are kept to the microsecond, in UTC. Text that is
// not valid UTF-8 (or holds NUL) is stored with U+FFFD in its place, so an
// attacker-chosen file name can never make a job unstorable.
type Store interface {
	// CreateJob inserts a new job. The caller sets ID (a ULID) and
	// CreatedAt; Status must be a legal first status
	// (scan.CanTransition(scan.StatusNew, job.Status)). A duplicate ID is
	// ErrConflict.
	CreateJob(ctx context.Context, job *scan.Job) error
	// UpdateJob replaces the stored job with job if and only if its
	// stored status is from and the move from -> job.Status is legal;
	// otherwise ErrConflict (ErrNotFound if there is no such job, which
	// wins over an illegal move). CreatedAt never changes. This
	// compare-and-set is what makes redelivered work store one result.
	UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error
	// SaveJob stores a finished job — created if from is
	// scan.StatusNew, else updated with UpdateJob's compare-and-set —
	// and, if v is not nil, caches its verdict, in one transaction: both
	// or neither. It is the pipeline's one write per scan, and the only
	// way a verdict enters the cache. v must be the job's own verdict
	// (same SHA-256 and verdict, clean or infected, job done): the one
	// its engines made, or, for a job answered from the cache
	// (job.Cached), the one it was answered with, so that LookupVerdict
	// keeps finding it. A v that is not the job's is an error.
	SaveJob(ctx context.Context, job *scan.Job, from scan.Status, v *scan.CachedVerdict) error
	// GetJob returns one job or ErrNotFound.
	GetJob(ctx context.Context, id string) (*scan.Job, error)
	// ListJobs lists jobs newest first (by ID, which sorts by creation
	// time), filtered, one page at a time. A bad filter or cursor is
	// ErrInvalid.
	ListJobs(ctx context.Context, f JobFilter) (JobPage, error)
	// LookupVerdict returns the newest cached verdict for content under
	// a set of engine versions, or ErrNotFound. Its JobID is a job that
	// holds the verdict.
	LookupVerdict(ctx context.Context, sha256, enginesKey string) (*scan.CachedVerdict, error)
	// AddDelivery puts a notification in the outbox (state pending). A
	// delivery whose ID is there already is left as it is: adding is
	// idempotent, so a retried job does not notify twice.
	AddDelivery(ctx context.Context, d *Delivery) error
	// ClaimDeliveries returns pending deliveries whose NextAt has come
	// (the longest due first, in no particular order within a batch), and pushes their NextAt to now+lease in the same
	// step, so that several dispatchers sharing a store do not send the
	// same delivery at once (and a dispatcher that dies mid-send leaves
	// it due again after the lease).
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Delivery, error)
	// UpdateDelivery records an attempt: State, Attempts, NextAt and
	// LastError.
	UpdateDelivery(ctx context.Context, d *Delivery) error
	// ListDeliveries lists deliveries in a state, newest first.
	ListDeliveries(ctx context.Context, state string, limit int) ([]*Delivery, error)
	// CountDeliveries counts deliveries by state.
	CountDeliveries(ctx context.Context) (map[string]int64, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// JobFilter selects jobs. Zero fields do not filter.
type JobFilter struct {
	Verdict scan.Verdict
	Status  scan.Status
	SHA256  string
	Bucket  string
	// Since keeps jobs created at or after this time.
	Since time.Time
	// Limit is the page size: 0 means DefaultLimit, capped at MaxLimit.
	Limit int
	// Cursor is JobPage.NextCursor of the previous page; "" starts at
	// the newest job.
	Cursor string
}

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// JobPage is one page of ListJobs.
type JobPage struct {
	Jobs []*scan.Job
	// NextCursor continues the listing; "" when this is the last page.
	NextCursor string
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one notification in the outbox.
type Delivery struct {
	// ID is stable for a job and event: receivers drop repeats by it.
	ID string `json:"id"`
	// Target names the receiver (a webhook's index in the
	// configuration and its URL without credentials).
	Target    string    `json:"target"`
	Event     string    `json:"event"`
	Body      []byte    `json:"-"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}
