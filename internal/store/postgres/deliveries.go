package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/internal/jobcodec"
)

// AddDelivery puts a delivery in the outbox; an existing ID is left alone.
func (s *Store) AddDelivery(ctx context.Context, d *store.Delivery) error {
	created, err := jobcodec.CheckDelivery(d)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO deliveries (id, target, event, body, state, attempts, next_at, last_error, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.Target, d.Event, d.Body, store.DeliveryPending, d.Attempts, d.NextAt, d.LastError, created)
	if err != nil {
		return fmt.Errorf("postgres: add delivery %s: %w", d.ID, err)
	}
	return nil
}

// UpdateDelivery records an attempt.
func (s *Store) UpdateDelivery(ctx context.Context, d *store.Delivery) error {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET state = $2, attempts = $3, next_at = $4, last_error = $5 WHERE id = $1`,
		d.ID, d.State, d.Attempts, d.NextAt, d.LastError)
	if err != nil {
		return fmt.Errorf("postgres: update delivery %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update delivery %s: %w", d.ID, store.ErrNotFound)
	}
	return nil
}

const deliveryColumns = `id, target, event, body, state, attempts, next_at, last_error, created_at`

func (s *Store) queryDeliveries(ctx context.Context, q string, args ...any) ([]*store.Delivery, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Delivery, error) {
		var d store.Delivery
		err := row.Scan(&d.ID, &d.Target, &d.Event, &d.Body, &d.State, &d.Attempts, &d.NextAt, &d.LastError, &d.CreatedAt)
		d.NextAt, d.CreatedAt = d.NextAt.UTC(), d.CreatedAt.UTC()
		return &d, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	if out == nil {
		out = []*store.Delivery{}
	}
	return out, nil
}

// ClaimDeliveries claims pending deliveries that are due (the oldest due first);
// rows another dispatcher is claiming are skipped, not waited for.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*store.Delivery, error) {
	out, err := s.queryDeliveries(ctx, `UPDATE deliveries SET next_at = $1
		WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= $2
		             ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+deliveryColumns, now.Add(lease), now, max(limit, 1))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListDeliveries lists deliveries in a state, newest first.
func (s *Store) ListDeliveries(ctx context.Context, state string, limit int) ([]*store.Delivery, error) {
	return s.queryDeliveries(ctx, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE state = $1 ORDER BY created_at DESC LIMIT $2`, state, max(limit, 1))
}

// CountDeliveries counts deliveries by state.
func (s *Store) CountDeliveries(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM deliveries GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count deliveries: %w", err)
	}
	defer rows.Close()
	out, err := jobcodec.CountByState(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: count deliveries: %w", err)
	}
	return out, nil
}
