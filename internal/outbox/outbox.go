// Package outbox delivers notifications from the store: a finished job's
// webhook deliveries are written to the store first (so a receiver that is
// down loses nothing, and a crash loses nothing), then a dispatcher sends
// them, retrying with backoff; deliveries that keep failing are kept as
// failed, listed by the API and counted in metrics — never dropped.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/store"
)

// Store is the outbox's part of the store.
type Store interface {
	AddDelivery(ctx context.Context, d *store.Delivery) error
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*store.Delivery, error)
	UpdateDelivery(ctx context.Context, d *store.Delivery) error
}

// Deliverer sends one delivery attempt.
type Deliverer interface {
	Deliver(ctx context.Context, d notify.Delivery) error
}

// Target is a receiver: its name (stored with each delivery), URL and
// deliverer.
type Target struct {
	Name string
	URL  string
	D    Deliverer
}

// DefaultPolicy retries for about a day and a half (backoff capped at 5
// minutes) before a delivery is marked failed.
var DefaultPolicy = notify.Policy{MaxAttempts: 400}

// Dispatcher sends due deliveries. It is safe for concurrent use.
type Dispatcher struct {
	store   Store
	targets map[string]Target
	policy  notify.Policy
	log     *slog.Logger
	wake    chan struct{}
	now     func() time.Time
	// recordTimeout bounds recording an attempt (recordTimeout, the
	// constant, but for tests).
	recordTimeout time.Duration
}

// New returns a Dispatcher over the targets.
func New(s Store, targets []Target, policy notify.Policy, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := map[string]Target{}
	for _, t := range targets {
		m[t.Name] = t
	}
	return &Dispatcher{store: s, targets: m, policy: policy, log: log, wake: make(chan struct{}, 1), now: time.Now,
		recordTimeout: recordTimeout}
}

// Enqueue stores a delivery for target and wakes the dispatcher. Adding
// the same ID twice is one delivery.
func (d *Dispatcher) Enqueue(ctx context.Context, target, id, event string, body []byte) error {
	if _, ok := d.targets[target]; !ok {
		return fmt.Errorf("outbox: unknown target %q", target)
	}
	err := d.store.AddDelivery(ctx, &store.Delivery{ID: id, Target: target, Event: event, Body: body,
		State: store.DeliveryPending, NextAt: d.now().UTC(), CreatedAt: d.now().UTC()})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run sends due deliveries until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for d.drain(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// drain sends one batch and reports whether there may be more.
func (d *Dispatcher) drain(ctx context.Context) bool {
	// Claim what is sent at once, twice over: a dispatcher that dies
	// mid-batch leaves its claims due again when the lease ends, so the
	// lease is as short as a batch of slow receivers allows (two rounds
	// of attempts at the webhooks' default 10 s timeout, and a margin).
	// A lease says nothing of who holds it, so after a crash the claims
	// of the dead process come back only when it ends.
	// A receiver slower than that may get a delivery twice; its ID says
	// it is the same one.
	due, err := d.store.ClaimDeliveries(ctx, d.now().UTC(), claimLease, claimBatch)
	if err != nil {
		if ctx.Err() == nil {
			d.log.LogAttrs(ctx, slog.LevelWarn, "outbox: reading due deliveries failed", slog.String("error", err.Error()))
		}
		return false
	}
	// Send side by side: one slow receiver or one commit of a recorded
	// attempt must not hold back the deliveries behind it. Their records
	// share the store's commits too.
	sem := make(chan struct{}, sendParallel)
	var wg sync.WaitGroup
	for _, del := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.send(ctx, del)
		}()
	}
	wg.Wait()
	return len(due) == claimBatch && ctx.Err() == nil
}

// sendParallel bounds the deliveries one dispatcher sends at once.
const sendParallel = 8

// claimBatch is how many deliveries a dispatcher claims at once: what it
// sends at once, twice over.
const claimBatch = 2 * sendParallel

// claimLease is how long claimed deliveries stay with the dispatcher that
// claimed them: the rounds of a batch at the webhooks' default timeout,
// and a margin (see drain).
const claimLease = claimBatch/sendParallel*notify.DefaultTimeout + 10*time.Second

func (d *Dispatcher) send(ctx context.Context, del *store.Delivery) {
	t, ok := d.targets[del.Target]
	var err error
	if !ok {
		err = errors.New("the target is no longer configured")
	} else {
		err = t.D.Deliver(ctx, notify.Delivery{ID: del.ID, URL: t.URL, Event: del.Event, Body: del.Body, Attempt: del.Attempts + 1})
	}
	if err != nil && ctx.Err() != nil {
		// Shutting down cut the attempt short: give the claim back so it
		// is due at once. One that succeeded is recorded as such below.
		del.NextAt = d.now().UTC()
		d.record(ctx, del)
		return
	}
	del.Attempts++
	switch {
	case err == nil:
		del.State, del.LastError = store.DeliveryDelivered, ""
	default:
		del.LastError = err.Error()
		delay, retry := d.policy.Next(del.Attempts, err)
		if retry && ok {
			del.NextAt = d.now().UTC().Add(delay)
		} else {
			del.State = store.DeliveryFailed
			d.log.LogAttrs(ctx, slog.LevelWarn, "delivery failed for good", slog.String("id", del.ID),
				slog.String("target", del.Target), slog.Int("attempts", del.Attempts), slog.String("error", del.LastError))
		}
	}
	d.record(ctx, del)
}

// recordTimeout bounds recording an attempt: it runs past the
// dispatcher's own cancellation (what was sent must be recorded), but a
// store that does not answer must not hold a shutdown for ever. An
// attempt not recorded is sent again once its claim lease ends.
const recordTimeout = 10 * time.Second

// record stores del's state after an attempt.
func (d *Dispatcher) record(ctx context.Context, del *store.Delivery) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.recordTimeout)
	defer cancel()
	if err := d.store.UpdateDelivery(rctx, del); err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "outbox: recording an attempt failed", slog.String("id", del.ID), slog.String("error", err.Error()))
	}
}
