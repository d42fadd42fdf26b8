package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/internal/jobcodec"
)

// AddDelivery puts a delivery in the outbox; an existing ID is left alone.
func (s *Store) AddDelivery(ctx context.Context, d *store.Delivery) error {
	created, err := jobcodec.CheckDelivery(d)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.write(ctx, func(ctx context.Context, tx conn) error {
		_, err := tx.StmtContext(ctx, s.stmts.insertDelivery).ExecContext(ctx,
			d.ID, d.Target, d.Event, d.Body, store.DeliveryPending, d.Attempts, d.NextAt.UnixMicro(), d.LastError, created.UnixMicro())
		if err != nil {
			return fmt.Errorf("sqlite: add delivery %s: %w", d.ID, err)
		}
		return nil
	})
}

// UpdateDelivery records an attempt.
func (s *Store) UpdateDelivery(ctx context.Context, d *store.Delivery) error {
	return s.write(ctx, func(ctx context.Context, tx conn) error {
		res, err := tx.StmtContext(ctx, s.stmts.updateDelivery).ExecContext(ctx,
			d.State, d.Attempts, d.NextAt.UnixMicro(), d.LastError, d.ID)
		if err != nil {
			return fmt.Errorf("sqlite: update delivery %s: %w", d.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: update delivery %s: %w", d.ID, store.ErrNotFound)
		}
		return nil
	})
}

const deliveryColumns = `id, target, event, body, state, attempts, next_at, last_error, created_at`

func (s *Store) queryDeliveries(ctx context.Context, q string, args ...any) ([]*store.Delivery, error) {
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	defer rows.Close()
	return scanDeliveries(rows)
}

func scanDeliveries(rows *sql.Rows) ([]*store.Delivery, error) {
	out := []*store.Delivery{}
	for rows.Next() {
		var d store.Delivery
		var next, created int64
		if err := rows.Scan(&d.ID, &d.Target, &d.Event, &d.Body, &d.State, &d.Attempts, &next, &d.LastError, &created); err != nil {
			return nil, fmt.Errorf("sqlite: deliveries: %w", err)
		}
		d.NextAt, d.CreatedAt = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC()
		out = append(out, &d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return out, nil
}

// ClaimDeliveries claims pending deliveries that are due.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*store.Delivery, error) {
	var out []*store.Delivery
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		rows, err := tx.StmtContext(ctx, s.stmts.claimDeliveries).QueryContext(ctx,
			now.Add(lease).UnixMicro(), now.UnixMicro(), max(limit, 1))
		if err != nil {
			return fmt.Errorf("sqlite: claim deliveries: %w", err)
		}
		defer rows.Close()
		out, err = scanDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListDeliveries lists deliveries in a state, newest first.
func (s *Store) ListDeliveries(ctx context.Context, state string, limit int) ([]*store.Delivery, error) {
	return s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE state = ? ORDER BY created_at DESC LIMIT ?`, state, max(limit, 1))
}

// CountDeliveries counts deliveries by state.
func (s *Store) CountDeliveries(ctx context.Context) (map[string]int64, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT state, count(*) FROM deliveries GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count deliveries: %w", err)
	}
	defer rows.Close()
	out, err := jobcodec.CountByState(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count deliveries: %w", err)
	}
	return out, nil
}
