package amqpq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/queue"
)

var (
	// errExpired: the delivery's ack deadline passed and the message was
	// given to another consumer; settling this delivery changes nothing.
	errExpired = errors.New("ack deadline passed; the message was redelivered")
	// errLost: the delivery's channel closed; the broker has requeued the
	// message.
	errLost = errors.New("channel closed; the broker redelivers the message")
)

// source is the queue.Source of one Consume call: a consumer on its own
// channel, with a prefetch of the call's concurrency, opened on the first
// Fetch and again after its channel or connection is lost.
type source struct {
	q        *Queue
	prefetch int

	mu      sync.Mutex
	cur     *consumer
	stopped bool // no new consumer after cancel
}

// consumer is one basic.consume on its channel.
type consumer struct {
	ch         *amqp.Channel
	tag        string
	deliveries <-chan amqp.Delivery
	once       sync.Once
}

func (c *consumer) cancel() {
	c.once.Do(func() {
		// Waits for cancel-ok: deliveries sent before it still arrive,
		// then the client closes c.deliveries.
		_ = c.ch.Cancel(c.tag, false)
	})
}

func (s *source) Done() <-chan struct{} { return s.q.done }

// Fetch implements queue.Source: it waits up to fetchWait for a first
// message and then takes what has already arrived, up to n.
func (s *source) Fetch(ctx context.Context, n int, deliver func(queue.Delivery)) error {
	q := s.q
	if q.closed.Load() {
		return fmt.Errorf("amqpq: fetch: %w", queue.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	c, err := s.consumer(wctx)
	switch {
	case err == nil:
	case q.closed.Load():
		return fmt.Errorf("amqpq: fetch: %w", queue.ErrClosed)
	case ctx.Err() != nil:
		return ctx.Err()
	case wctx.Err() != nil:
		// Still no connection; the reconnect loop logs about it.
		return nil
	default:
		return fmt.Errorf("amqpq: fetch: %w", q.mapErr(err))
	}
	for got := 0; got < n; {
		var d amqp.Delivery
		var ok bool
		if got == 0 {
			select {
			case d, ok = <-c.deliveries:
			case <-wctx.Done():
				return ctx.Err()
			case <-q.done:
				return fmt.Errorf("amqpq: fetch: %w", queue.ErrClosed)
			}
		} else {
			select {
			case d, ok = <-c.deliveries:
			default:
				return nil
			}
		}
		if !ok {
			// Cancelled (by us at stop, or by the broker), or the
			// channel closed: the next Fetch opens a new consumer.
			s.drop(c)
			if q.closed.Load() {
				return fmt.Errorf("amqpq: fetch: %w", queue.ErrClosed)
			}
			return ctx.Err()
		}
		if dv := q.newDelivery(c, d); dv != nil {
			deliver(dv)
			got++
		}
	}
	return nil
}

// consumer returns the current consumer, opening one when there is none.
func (s *source) consumer(ctx context.Context) (*consumer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, context.Canceled
	}
	if s.cur != nil && !s.cur.ch.IsClosed() {
		return s.cur, nil
	}
	s.cur = nil
	q := s.q
	sess, err := q.session(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := sess.conn.Channel()
	if err != nil {
		return nil, err
	}
	// The broker sends this consumer at most as many unacknowledged
	// messages as it has handlers, so none waits here for a handler.
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		ch.Close()
		return nil, err
	}
	tag := fmt.Sprintf("%s-%s-%d", q.cfg.Name, q.idPrefix, q.seq.Add(1))
	dl, err := ch.Consume(q.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("consume %s: %w", q.cfg.Queue, err)
	}
	s.cur = &consumer{ch: ch, tag: tag, deliveries: dl}
	return s.cur, nil
}

func (s *source) drop(c *consumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == c {
		s.cur = nil
	}
	_ = c.ch.Close()
}

// cancel stops the broker's deliveries to this Consume call; handlers can
// still settle what they have.
func (s *source) cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.cur != nil {
		s.cur.cancel()
	}
}

// close runs after the consume loop has returned (every handler is done):
// it hands back what the broker sent and no handler took, then closes the
// channel.
func (s *source) close() {
	s.mu.Lock()
	c := s.cur
	s.cur = nil
	s.stopped = true
	s.mu.Unlock()
	if c == nil {
		return
	}
	c.cancel()
	ctx, cancel := context.WithTimeout(s.q.ctx, settleTimeout)
	defer cancel()
	for {
		select {
		case d, ok := <-c.deliveries:
			if !ok {
				_ = c.ch.Close()
				return
			}
			s.q.release(ctx, d)
		case <-ctx.Done():
			// Closing the channel requeues what is left.
			_ = c.ch.Close()
			return
		}
	}
}

// release hands back a message that reached this process but no handler:
// a copy with the same attempt count, rather than a requeue, which the
// queue would count as a delivery.
func (q *Queue) release(ctx context.Context, d amqp.Delivery) {
	hdr := amqp.Table{hdrAttempts: int64(attemptOf(d) - 1)}
	if err := q.publishOnce(ctx, "", q.cfg.Queue, q.message(d.Body, hdr)); err != nil {
		// Left unacknowledged, it is requeued when the channel closes.
		q.log.Debug("release failed; the broker requeues the message", "err", err)
		return
	}
	_ = d.Ack(false)
}

// attemptOf returns the 1-based delivery count of d: the deliveries of
// the messages it was copied from (x-lazaret-attempts) plus those of
// this copy (x-delivery-count counts returns to the queue).
func attemptOf(d amqp.Delivery) int {
	prior := intHeader(d.Headers[hdrAttempts])
	returns := intHeader(d.Headers[hdrDeliveryCount])
	if returns == 0 && d.Redelivered {
		// A broker that does not count returns of this kind (RabbitMQ
		// 4.3 counts only rejections): at least one.
		returns = 1
	}
	return max(prior, 0) + max(returns, 0) + 1
}

func intHeader(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int8:
		return int(n)
	case int16:
		return int(n)
	case int32:
		return int(n)
	case int64:
		return int(n)
	case uint8:
		return int(n)
	case uint16:
		return int(n)
	case uint32:
		return int(n)
	case uint64:
		return int(n)
	}
	return 0
}

// newDelivery makes d a queue.Delivery, or dead-letters it (and returns
// nil) when it is not a job message or has had all its deliveries, the
// abandoned ones included.
func (q *Queue) newDelivery(c *consumer, d amqp.Delivery) *delivery {
	attempt := attemptOf(d)
	m, err := queue.DecodeMessage(d.Body)
	if err != nil {
		attrs := []any{"err", err, "size", len(d.Body), "attempt", attempt, "dead_letter_queue", q.cfg.DeadLetterQueue}
		if derr := q.deadLetter(c, d, attempt, "malformed: "+err.Error()); derr != nil {
			q.log.Error("malformed message, dead-lettering failed", append(attrs, "dead_letter_err", derr)...)
		} else {
			q.log.Error("malformed message dead-lettered", attrs...)
		}
		return nil
	}
	if limit := queue.MaxDeliveries(q.cfg.MaxDeliver); attempt > limit {
		// Past the abandoned deliveries too: the consumers of the final
		// attempt and of every abandoned delivery stopped without
		// settling them. Kept in the dead-letter queue, with the reason.
		reason := fmt.Sprintf("delivered %d times (max_deliver %d, then %d to record the job's end); the consumer of the last delivery stopped without settling it",
			attempt-1, q.cfg.MaxDeliver, queue.AbandonedDeliveries)
		if derr := q.deadLetter(c, d, attempt-1, reason); derr != nil {
			q.log.Error("dead-lettering failed", "job_id", m.JobID, "reason", reason, "err", derr)
		} else {
			q.log.Error("message dead-lettered", "job_id", m.JobID, "reason", reason, "dead_letter_queue", q.cfg.DeadLetterQueue)
		}
		return nil
	}
	// Past MaxDeliver, the message is handed out as abandoned, so that
	// its handler records the job's end.
	m = m.WithAttempt(attempt, q.cfg.MaxDeliver)
	dv := &delivery{q: q, c: c, d: d, m: m, deadline: time.Now().Add(q.cfg.AckWait)}
	q.inFlight.Add(1)
	// Under mu, so that expire sees the timer.
	dv.mu.Lock()
	dv.timer = time.AfterFunc(q.cfg.AckWait, dv.expire)
	dv.mu.Unlock()
	return dv
}

// deadLetter moves d to the dead-letter queue with a reason: a copy, then
// an ack. If the copy cannot be published, the message is rejected
// instead, which the job queue dead-letters too (without the reason).
func (q *Queue) deadLetter(c *consumer, d amqp.Delivery, attempts int, reason string) error {
	ctx, cancel := context.WithTimeout(q.ctx, settleTimeout)
	defer cancel()
	return q.term(ctx, c, d, attempts, reason)
}

func (q *Queue) term(ctx context.Context, c *consumer, d amqp.Delivery, attempts int, reason string) error {
	if q.closed.Load() {
		// Settlements fail once the queue is closed, as documented; the
		// broker requeues the message with the connection.
		return queue.ErrClosed
	}
	if c.ch.IsClosed() {
		return errLost
	}
	hdr := amqp.Table{
		hdrAttempts:     int64(attempts),
		hdrReason:       reason,
		hdrQueue:        q.cfg.Queue,
		hdrTerminatedAt: time.Now().UTC().Format(time.RFC3339Nano),
	}
	err := q.publishOnce(ctx, q.cfg.DeadLetterExchange, q.cfg.DeadLetterQueue, q.message(d.Body, hdr))
	switch {
	case err == nil:
	case errors.Is(err, queue.ErrClosed), errors.Is(err, errConnLost):
		return err
	default:
		q.log.Warn("dead-letter publish failed; rejecting the message to the queue's dead-letter exchange", "err", err)
		if rerr := d.Reject(false); rerr != nil {
			return fmt.Errorf("%w: %w", errLost, rerr)
		}
		return nil
	}
	if err := d.Ack(false); err != nil {
		// The copy is in the dead-letter queue, and the broker requeues
		// the original with the channel.
		return fmt.Errorf("%w: %w", errLost, err)
	}
	return nil
}

// delivery states
const (
	stateOpen    = iota
	stateSettled // acked, Nak'ed or terminated
	stateExpired // redelivered elsewhere; the original is still unacked
	stateDone    // expired and the original acknowledged, or lost
)

// delivery is one AMQP delivery as a queue.Delivery.
type delivery struct {
	q *Queue
	c *consumer
	d amqp.Delivery
	m queue.Message

	// mu serialises settlements with the deadline.
	mu       sync.Mutex
	state    int
	deadline time.Time
	timer    *time.Timer
}

func (d *delivery) Message() queue.Message { return d.m }

// finish leaves the open state; it holds d.mu.
func (d *delivery) finish(state int) {
	d.state = state
	d.timer.Stop()
	d.q.inFlight.Add(-1)
}

// closedErr returns the error for a settlement that comes too late, and
// acknowledges the original of an expired delivery, whose handler has
// now come back, freeing its place in the prefetch.
func (d *delivery) closedErr() error {
	switch d.state {
	case stateSettled:
		return queue.ErrSettled
	case stateExpired:
		_ = d.d.Ack(false)
		d.state = stateDone
		return errExpired
	default:
		if d.c.ch.IsClosed() {
			return errLost
		}
		return errExpired
	}
}

// Ack acknowledges the message. RabbitMQ does not confirm acks: nil means
// the ack was sent on a live channel. Should the connection fail before
// the broker reads it, the message comes again.
func (d *delivery) Ack(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateOpen {
		return fmt.Errorf("amqpq: ack: %w", d.closedErr())
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqpq: ack: %w", err)
	}
	if err := d.d.Ack(false); err != nil {
		d.finish(stateDone)
		return fmt.Errorf("amqpq: ack: %w: %w", errLost, err)
	}
	d.finish(stateSettled)
	return nil
}

// Nak republishes the message, to the delay queue for delay (or straight
// to the job queue without one), and then acknowledges it.
func (d *delivery) Nak(ctx context.Context, delay time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateOpen {
		err := d.closedErr()
		if errors.Is(err, errExpired) {
			// Redelivered already, which is what a Nak asks for.
			return nil
		}
		return fmt.Errorf("amqpq: nak: %w", err)
	}
	if d.c.ch.IsClosed() {
		d.finish(stateDone)
		return fmt.Errorf("amqpq: nak: %w", errLost)
	}
	if delay <= 0 {
		delay = d.q.cfg.Delay(d.m.Attempt)
	}
	msg := d.q.message(d.d.Body, amqp.Table{hdrAttempts: int64(d.m.Attempt)})
	var err error
	if delay > 0 {
		err = d.q.publishDelayed(ctx, delay, msg)
	} else {
		err = d.q.publishOnce(ctx, "", d.q.cfg.Queue, msg)
	}
	if err != nil {
		// Still open: the handler (or the deadline) can try again.
		return fmt.Errorf("amqpq: nak: %w", d.q.mapErr(err))
	}
	if err := d.d.Ack(false); err != nil {
		// The copy is queued; the broker requeues the original too,
		// which makes one extra delivery.
		d.finish(stateDone)
		return nil
	}
	d.finish(stateSettled)
	return nil
}

// Term moves the message to the dead-letter queue with reason.
func (d *delivery) Term(ctx context.Context, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateOpen {
		return fmt.Errorf("amqpq: term: %w", d.closedErr())
	}
	if err := d.q.term(ctx, d.c, d.d, d.m.Attempt, reason); err != nil {
		if errors.Is(err, errLost) {
			d.finish(stateDone)
		}
		return fmt.Errorf("amqpq: term: %w", d.q.mapErr(err))
	}
	d.finish(stateSettled)
	return nil
}

// InProgress pushes the local ack deadline back by AckWait. It sends
// nothing: the broker has no deadline to push.
func (d *delivery) InProgress(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateOpen {
		return fmt.Errorf("amqpq: in progress: %w", d.closedErr())
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqpq: in progress: %w", err)
	}
	d.deadline = time.Now().Add(d.q.cfg.AckWait)
	d.timer.Reset(d.q.cfg.AckWait)
	return nil
}

// expire runs when the ack deadline may have passed: it gives the message
// to another consumer (a copy with this attempt counted) and keeps the
// original unacknowledged while the handler still runs, so that the broker
// does not send this consumer a message for a handler it does not have.
func (d *delivery) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.q
	if d.state != stateOpen || q.closed.Load() {
		return
	}
	if left := time.Until(d.deadline); left > 0 {
		// InProgress moved the deadline as the timer fired.
		d.timer.Reset(left)
		return
	}
	if d.c.ch.IsClosed() {
		d.finish(stateDone)
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, settleTimeout)
	defer cancel()
	msg := q.message(d.d.Body, amqp.Table{hdrAttempts: int64(d.m.Attempt)})
	if err := q.publishOnce(ctx, "", q.cfg.Queue, msg); err != nil {
		retry := min(q.cfg.AckWait, time.Second)
		q.log.Warn("ack deadline passed; redelivery failed, retrying", "job_id", d.m.JobID, "attempt", d.m.Attempt, "err", err, "retry_in", retry)
		d.timer.Reset(retry)
		return
	}
	d.finish(stateExpired)
	q.log.Warn("ack deadline passed; message redelivered", "job_id", d.m.JobID, "attempt", d.m.Attempt, "ack_wait", q.cfg.AckWait)
}
