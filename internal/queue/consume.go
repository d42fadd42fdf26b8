package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Source is what a driver gives a consume loop (RunConsumer with D
// Delivery, RunRawConsumer with D RawDelivery): a way to take deliveries
// off the broker.
type Source[D Settler] interface {
	// Fetch waits a short while (seconds) for up to max deliveries and
	// calls deliver for each as soon as it arrives, so that a handler
	// starts at once rather than when the batch is full. A job driver
	// decodes payloads itself and terminates the malformed ones,
	// delivering only valid messages. It returns an error wrapping
	// ErrClosed once the source is closed, and ctx's error once ctx is
	// done.
	Fetch(ctx context.Context, max int, deliver func(D)) error
	// Done is closed when the source is closed, so that a loop waiting
	// for a free handler notices. A source that is never closed returns
	// nil.
	Done() <-chan struct{}
}

// settleTimeout bounds the settlements Consume makes on a handler's
// behalf, which run after the handler's context may have been cancelled.
const settleTimeout = 5 * time.Second

// Retry delays after a failed fetch (broker down, connection lost):
// doubling from the first to the last, so an outage is neither hammered
// nor noticed late.
const (
	fetchRetryMin = 50 * time.Millisecond
	fetchRetryMax = 5 * time.Second
)

// RunConsumer is the consume loop job drivers share; Queue.Consume
// documents what it does. defaultHeartbeat replaces a zero opts.Heartbeat
// (drivers pass a third of their ack deadline, or a negative value if
// they have none). log must not be nil.
func RunConsumer(ctx context.Context, src Source[Delivery], h Handler, opts ConsumeOptions, defaultHeartbeat time.Duration, log *slog.Logger) error {
	if h == nil {
		return errors.New("queue: consume: nil handler")
	}
	return consume(ctx, src, opts, defaultHeartbeat, log, func(d Delivery) (*tracked, func(context.Context)) {
		m := d.Message()
		l := log.With("job_id", m.JobID, "attempt", m.Attempt)
		if m.Abandoned {
			l = l.With("abandoned", true)
		}
		t := &tracked{d: d, final: m.Final, log: l}
		return t, func(ctx context.Context) { h(ctx, jobDelivery{t, m}) }
	})
}

// RunRawConsumer is RunConsumer for messages that are not jobs (S3 event
// notifications): the handler gets each body as the broker delivered it,
// with the same pool, stops, timeouts, heartbeats and settle-once rules.
// A raw delivery is never final: one its handler leaves unsettled is
// Nak'ed.
func RunRawConsumer(ctx context.Context, src Source[RawDelivery], h RawHandler, opts ConsumeOptions, defaultHeartbeat time.Duration, log *slog.Logger) error {
	if h == nil {
		return errors.New("queue: consume: nil handler")
	}
	return consume(ctx, src, opts, defaultHeartbeat, log, func(d RawDelivery) (*tracked, func(context.Context)) {
		t := &tracked{d: d, log: log.With("redelivered", d.Redelivered())}
		return t, func(ctx context.Context) { h(ctx, rawDelivery{t, d}) }
	})
}

// jobDelivery is what a Handler gets: the driver's message, settled
// through tracked.
type jobDelivery struct {
	*tracked
	m Message
}

func (d jobDelivery) Message() Message { return d.m }

// rawDelivery is what a RawHandler gets: the driver's body, settled
// through tracked.
type rawDelivery struct {
	*tracked
	raw RawDelivery
}

func (d rawDelivery) Body() []byte      { return d.raw.Body() }
func (d rawDelivery) Redelivered() bool { return d.raw.Redelivered() }

// consume is the loop of RunConsumer and RunRawConsumer. track wraps a
// driver's delivery for the rules of tracked and returns the call of the
// handler with it.
func consume[D Settler](ctx context.Context, src Source[D], opts ConsumeOptions, defaultHeartbeat time.Duration, log *slog.Logger,
	track func(D) (*tracked, func(context.Context))) error {
	n := opts.Concurrency
	if n <= 0 {
		n = 1
	}
	soft := opts.SoftStop
	if soft == 0 {
		soft = DefaultSoftStop
	}
	hb := opts.Heartbeat
	if hb == 0 {
		hb = defaultHeartbeat
	}

	// Handlers run under hardCtx, not ctx: cancelling Consume stops the
	// fetching, and handlers get SoftStop to finish before hardCtx goes.
	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()

	// slots holds one token per idle handler. The loop fetches only as
	// many messages as it has tokens, so no message waits locally while
	// its ack deadline runs.
	slots := make(chan struct{}, n)
	for range n {
		slots <- struct{}{}
	}
	var wg sync.WaitGroup
	var stopErr error
	retry := fetchRetryMin

fetching:
	for {
		select {
		case <-ctx.Done():
			break fetching
		case <-src.Done():
			stopErr = fmt.Errorf("queue: consume: %w", ErrClosed)
			break fetching
		case <-slots:
		}
		free := 1
	more:
		for free < n {
			select {
			case <-slots:
				free++
			default:
				break more
			}
		}

		got := 0
		err := src.Fetch(ctx, free, func(d D) {
			if got == free {
				// A driver bug; hand the surplus back rather than lose it.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
				defer cancel()
				_ = d.Nak(sctx, time.Nanosecond)
				return
			}
			got++
			t, call := track(d)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { slots <- struct{}{} }()
				handle(hardCtx, t, call, opts.HandlerTimeout, hb)
			}()
		})
		for range free - got {
			slots <- struct{}{}
		}

		switch {
		case err == nil:
			retry = fetchRetryMin
		case ctx.Err() != nil:
			break fetching
		case errors.Is(err, ErrClosed):
			stopErr = err
			break fetching
		default:
			log.Warn("fetch failed, retrying", "err", err, "retry_in", retry)
			t := time.NewTimer(retry)
			select {
			case <-ctx.Done():
				t.Stop()
				break fetching
			case <-src.Done():
				t.Stop()
				stopErr = fmt.Errorf("queue: consume: %w", ErrClosed)
				break fetching
			case <-t.C:
			}
			retry = min(2*retry, fetchRetryMax)
		}
	}

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	if stopErr == nil && soft > 0 {
		t := time.NewTimer(soft)
		defer t.Stop()
		select {
		case <-done:
			return nil
		case <-t.C:
			log.Warn("soft stop timed out, cancelling handlers", "soft_stop", soft)
		}
	}
	// Hard stop: handlers must return once their context is cancelled.
	// Waiting for them (rather than abandoning them) is what keeps
	// Consume from leaking goroutines.
	hardCancel()
	<-done
	return stopErr
}

// handle runs one delivery: heartbeats while the handler (call) runs,
// then the settlement the handler left out.
func handle(hardCtx context.Context, t *tracked, call func(context.Context), timeout, hb time.Duration) {
	hctx := hardCtx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(hctx, timeout)
		defer cancel()
	}

	hbDone := make(chan struct{})
	hbCtx, stopHB := context.WithCancel(hctx)
	if hb > 0 {
		go func() {
			defer close(hbDone)
			heartbeat(hbCtx, t, hb)
		}()
	} else {
		close(hbDone)
	}

	panicked := run(hctx, call, t.log)
	stopHB()
	<-hbDone

	if t.isSettled() {
		return
	}
	// Settle on the handler's behalf, even after a hard stop: a Nak
	// hands the message to another consumer now rather than after the
	// ack deadline.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(hardCtx), settleTimeout)
	defer cancel()
	var err error
	if t.final {
		err = t.Term(sctx, "final delivery left unsettled by its handler")
	} else {
		if !panicked {
			t.log.Warn("handler returned without settling; redelivering")
		}
		err = t.Nak(sctx, 0)
	}
	if err != nil && !errors.Is(err, ErrSettled) {
		t.log.Warn("settle after handler failed; the ack deadline will redeliver", "err", err)
	}
}

// run calls the handler, turning a panic into a log line so that one bad
// message cannot take the consumer down. It reports whether the handler
// panicked.
func run(ctx context.Context, call func(context.Context), log *slog.Logger) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			log.Error("handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	call(ctx)
	return false
}

// heartbeat calls InProgress every interval until ctx is done or the
// delivery is settled.
func heartbeat(ctx context.Context, t *tracked, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := t.InProgress(ctx)
		switch {
		case err == nil:
		case errors.Is(err, ErrSettled):
			return
		case ctx.Err() != nil:
			return
		default:
			// A missed beat is not fatal: the deadline allows for a few.
			t.log.Warn("heartbeat failed", "err", err)
		}
	}
}

// tracked wraps a driver's delivery to enforce the rules drivers share:
// one settlement, Nak on a final delivery becomes Term, terminations are
// logged.
type tracked struct {
	d     Settler
	final bool
	log   *slog.Logger

	// mu serialises the driver calls, so that a heartbeat never races an
	// Ack on the same message.
	mu      sync.Mutex
	settled bool
}

func (t *tracked) isSettled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.settled
}

// settle runs f unless the delivery is settled, and marks it settled when
// f succeeds. A failed settlement leaves the delivery open, so the caller
// can try again (or Consume settles it).
func (t *tracked) settle(f func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.settled {
		return ErrSettled
	}
	if err := f(); err != nil {
		return err
	}
	t.settled = true
	return nil
}

func (t *tracked) Ack(ctx context.Context) error {
	return t.settle(func() error { return t.d.Ack(ctx) })
}

func (t *tracked) Nak(ctx context.Context, delay time.Duration) error {
	if t.final {
		return t.Term(ctx, "nak on the final delivery")
	}
	return t.settle(func() error { return t.d.Nak(ctx, delay) })
}

func (t *tracked) Term(ctx context.Context, reason string) error {
	return t.settle(func() error {
		if err := t.d.Term(ctx, reason); err != nil {
			return err
		}
		t.log.Warn("message terminated", "reason", reason, "final", t.final)
		return nil
	})
}

func (t *tracked) InProgress(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.settled {
		return ErrSettled
	}
	return t.d.InProgress(ctx)
}
