package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lazaret/lazaret/internal/store"
)

// Group commit. Every write goes through one connection, and in WAL mode
// the cost of a write is mostly its commit (WAL frames written, the lock
// taken and released). So writes that arrive while another is committing
// wait in a queue, and the writer runs all of them in the next single
// transaction: under load, one commit stores many jobs. Each write still
// gets its own result, and a write that fails for a reason other than
// its own outcome (not found, conflict) makes the batch run again one
// write at a time, so one bad write cannot fail its neighbours.

// maxBatch bounds the writes in one transaction.
const maxBatch = 128

// writeFunc runs one write on c. A write is one statement that changes
// rows, possibly followed by reads that explain its outcome, so that run
// alone it is atomic by itself. Errors wrapping store.ErrConflict or
// store.ErrNotFound are the write's outcome; any other error means the
// transaction may be unusable.
type writeFunc func(ctx context.Context, c conn) error

// conn is where a write runs: the transaction its batch shares (*sql.Tx),
// or, for a write alone, the writer connection itself (autocommit), where
// SQLite commits the statement by itself. The second spares a lone write
// the BEGIN and COMMIT statements, which the driver prepares anew for
// every transaction: about a fifth of a lone write's CPU, and under a
// light load most writes are alone. (A statement that starts its own
// transaction takes the write lock as BEGIN IMMEDIATE does, waiting
// under busy_timeout.)
type conn interface {
	StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt
}

// autocommit runs statements on the writer connection outside any
// transaction: the statements are prepared on it, and it is the only one.
type autocommit struct{}

func (autocommit) StmtContext(_ context.Context, stmt *sql.Stmt) *sql.Stmt { return stmt }

type writeOp struct {
	ctx  context.Context
	run  writeFunc
	done chan error
}

// write runs fn in a transaction, possibly shared with concurrent writes,
// and returns fn's outcome once the transaction committed.
func (s *Store) write(ctx context.Context, fn writeFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, run: fn, done: make(chan error, 1)}
	select {
	case s.writes <- op:
	case <-s.stop:
		return errors.New("sqlite: store is closed")
	}
	// Wait for the outcome even if ctx ends meanwhile: the write may be
	// committing, and the caller must not believe it was not stored.
	return <-op.done
}

// runWriter is the goroutine that owns the write connection.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		select {
		case op := <-s.writes:
			batch = append(batch[:0], op)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		s.runBatch(batch)
	}
}

func outcome(err error) bool {
	return err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)
}

func (s *Store) runBatch(batch []*writeOp) {
	if len(batch) > 1 {
		results, err := s.runTx(batch)
		if err == nil {
			for i, op := range batch {
				op.done <- results[i]
			}
			return
		}
		s.logger.Debug("group commit failed; writing one at a time", "writes", len(batch), "error", err)
	}
	for _, op := range batch {
		op.done <- s.runAlone(op)
	}
}

// runAlone runs op by itself, in autocommit mode.
func (s *Store) runAlone(op *writeOp) error {
	if err := op.ctx.Err(); err != nil {
		return err
	}
	// As in runTx: once started, a write runs to its end.
	return op.run(context.WithoutCancel(op.ctx), autocommit{})
}

// runTx runs ops, several, in one transaction and returns each op's
// outcome, or an error if the transaction as a whole failed (and was
// rolled back).
func (s *Store) runTx(ops []*writeOp) ([]error, error) {
	tx, err := s.writeDB.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	results := make([]error, len(ops))
	for i, op := range ops {
		err := op.ctx.Err()
		if err == nil {
			// Once started, a write runs to its end: its caller waits
			// for the outcome anyway, and an interrupt would fail the
			// whole batch. A context without Done also spares the
			// driver a watching goroutine per statement.
			err = op.run(context.WithoutCancel(op.ctx), tx)
		}
		if !outcome(err) {
			tx.Rollback()
			return nil, err
		}
		results[i] = err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}
