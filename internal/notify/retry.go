package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Policy says how often and how soon a failed delivery is tried again. The
// zero value uses the defaults below.
type Policy struct {
	// MaxAttempts is the number of attempts, the first included, after
	// which Retry gives up; 0 means 8. An outbox keeps what Retry gives
	// up on, so this bounds one run, not the delivery's life.
	MaxAttempts int
	// BaseDelay is the delay after the first failure; 0 means 1s. Each
	// further failure doubles it.
	BaseDelay time.Duration
	// MaxDelay caps the doubled delay; 0 means 5m.
	MaxDelay time.Duration
	// MaxRetryAfter caps how long a receiver's Retry-After can make us
	// wait; 0 means 1h. A larger Retry-After is cut down to it.
	MaxRetryAfter time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Minute
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Hour
	}
	return p
}

// Backoff returns the delay after the given failed attempt (1 for the
// first): BaseDelay doubled per earlier failure, capped at MaxDelay, with
// "equal jitter": half of it fixed, half random. The random half spreads
// out the retries of many deliveries that failed together (a receiver
// that was down); the fixed half keeps a minimum pause.
func (p Policy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.BaseDelay
	for i := 1; i < attempt; i++ {
		if d > p.MaxDelay/2 { // doubling would pass the cap (or overflow)
			d = p.MaxDelay
			break
		}
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Next decides, after the given failed attempt (1 for the first) ended in
// err, whether to try again and after how long. It is Retry's decision,
// exposed for an outbox that schedules attempts itself. A permanent error
// or a spent attempt budget means no retry. A receiver's Retry-After, up
// to MaxRetryAfter, is honoured when longer than the backoff.
func (p Policy) Next(attempt int, err error) (time.Duration, bool) {
	p = p.withDefaults()
	if err == nil || IsPermanent(err) || attempt >= p.MaxAttempts {
		return 0, false
	}
	d := p.Backoff(attempt)
	if ra := min(RetryAfterOf(err), p.MaxRetryAfter); ra > d {
		d = ra
	}
	return d, true
}

// ErrGaveUp is wrapped by Retry's error when every attempt failed with an
// error that could have passed.
var ErrGaveUp = errors.New("notify: gave up")

// Retry delivers *d with dl until it succeeds, fails permanently, runs out
// of attempts under p, or ctx ends. It counts d.Attempt up on each
// attempt, so the caller (an outbox) can store it; d.ID never changes. It logs each failed attempt that will be
// retried (without the secret or the URL's credentials) and returns the
// final error: the permanent one, ErrGaveUp with the last one, or ctx's
// error with the last one.
func Retry(ctx context.Context, p Policy, dl Deliverer, d *Delivery, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p = p.withDefaults()
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("notify: deliver %s: %w", d.ID, err)
		}
		err := dl.Deliver(ctx, *d)
		d.Attempt++
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("notify: deliver %s: %w (last attempt: %w)", d.ID, ctx.Err(), err)
		}
		wait, again := p.Next(n, err)
		if !again {
			return fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, n, err)
		}
		log.Warn("webhook delivery failed, will retry",
			"delivery", d.ID, "event", d.Event, "attempt", n, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("notify: deliver %s: %w (last attempt: %w)", d.ID, ctx.Err(), err)
		case <-t.C:
		}
	}
}
