package amqpq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	// errConnLost: the channel or connection closed before the broker
	// answered; the operation may or may not have taken effect.
	errConnLost = errors.New("connection or channel closed")
	// errUnroutable: the broker returned a mandatory message: no queue is
	// bound for it.
	errUnroutable = errors.New("no queue for the message")
	// errNacked: the broker refused to store the message (a quorum queue
	// without a leader, or over a length limit).
	errNacked = errors.New("broker refused the message")
)

// redeclareEvery is how often a delay queue in use is declared again.
// Publishing does not count as use for x-expires, and a queue that
// expires is deleted with its messages: redeclaring well within
// x-expires (delay + at least 10 minutes) keeps it while it is used.
const redeclareEvery = time.Minute

// session is one connection and the publisher channel on it.
type session struct {
	q        *Queue
	conn     *amqp.Connection
	closeErr chan *amqp.Error // from conn.NotifyClose

	mu  sync.Mutex
	pub *publisher
}

// declare declares the dead-letter queue, the job queue and their
// exchanges and bindings.
func (s *session) declare() error {
	ch, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("amqpq: declare: %w", err)
	}
	defer ch.Close()
	c := s.q.cfg
	if _, err := ch.QueueDeclare(c.DeadLetterQueue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return fmt.Errorf("amqpq: declare dead-letter queue %s: %w", c.DeadLetterQueue, hint(err))
	}
	if c.DeadLetterExchange != "" {
		if err := ch.ExchangeDeclare(c.DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("amqpq: declare dead-letter exchange %s: %w", c.DeadLetterExchange, hint(err))
		}
		if err := ch.QueueBind(c.DeadLetterQueue, c.DeadLetterQueue, c.DeadLetterExchange, false, nil); err != nil {
			return fmt.Errorf("amqpq: bind dead-letter queue %s: %w", c.DeadLetterQueue, err)
		}
	}
	if _, err := ch.QueueDeclare(c.Queue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
		// Whatever the broker drops itself (a delivery limit set by
		// policy; RabbitMQ 4 sets one by default) goes to the
		// dead-letter queue, at least once.
		"x-dead-letter-exchange":    c.DeadLetterExchange,
		"x-dead-letter-routing-key": c.DeadLetterQueue,
		"x-dead-letter-strategy":    "at-least-once",
		// Required by at-least-once dead-lettering, and right anyway: a
		// length limit must refuse new jobs, not drop queued ones.
		amqp.QueueOverflowArg: amqp.QueueOverflowRejectPublish,
	}); err != nil {
		return fmt.Errorf("amqpq: declare queue %s: %w", c.Queue, hint(err))
	}
	if c.Exchange != "" {
		if err := ch.ExchangeDeclare(c.Exchange, c.ExchangeType, true, false, false, false, nil); err != nil {
			return fmt.Errorf("amqpq: declare exchange %s: %w", c.Exchange, hint(err))
		}
		if err := ch.QueueBind(c.Queue, c.RoutingKey, c.Exchange, false, nil); err != nil {
			return fmt.Errorf("amqpq: bind queue %s: %w", c.Queue, err)
		}
	}
	return nil
}

// hint explains the error of declaring something that exists with other
// settings.
func hint(err error) error {
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
		return fmt.Errorf("%w (it exists with other settings: delete it, or configure another name)", err)
	}
	return err
}

// depth returns the ready count of a queue (a passive declare).
func (s *session) depth(name string) (int, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return 0, err
	}
	// A passive declare of a missing queue closes the channel: one
	// channel per call keeps that from affecting anything else.
	defer ch.Close()
	qi, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return qi.Messages, nil
}

// delayQueue returns the name of the queue that delays messages by d,
// declaring it unless that was done recently (or force).
func (s *session) delayQueue(d time.Duration, force bool) (string, error) {
	q := s.q
	ms := delayMillis(d)
	name := fmt.Sprintf("%s.delay.%dms", q.cfg.Queue, ms)
	q.delayMu.Lock()
	last, ok := q.delays[name]
	q.delayMu.Unlock()
	if ok && !force && time.Since(last) < redeclareEvery {
		return name, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return "", err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:       amqp.QueueTypeQuorum,
		amqp.QueueMessageTTLArg: ms,
		// Deleted after it has gone unused (not declared) this long;
		// see redeclareEvery.
		amqp.QueueTTLArg:            2*ms + (10 * time.Minute).Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": q.cfg.Queue,
		"x-dead-letter-strategy":    "at-least-once",
		amqp.QueueOverflowArg:       amqp.QueueOverflowRejectPublish,
	}); err != nil {
		return "", fmt.Errorf("declare delay queue %s: %w", name, hint(err))
	}
	q.delayMu.Lock()
	q.delays[name] = time.Now()
	q.delayMu.Unlock()
	return name, nil
}

// delayQueues returns the delay queues this process has declared.
func (q *Queue) delayQueues() []string {
	q.delayMu.Lock()
	defer q.delayMu.Unlock()
	names := make([]string, 0, len(q.delays))
	for n := range q.delays {
		names = append(names, n)
	}
	return names
}

// delayMillis rounds d up to whole milliseconds with two significant
// digits (5s, 1.3s, 99ms), so that arbitrary Nak delays share a bounded
// number of delay queues, each at most 10% longer than asked for.
func delayMillis(d time.Duration) int64 {
	d = min(d, MaxDelay)
	ms := max(int64((d+time.Millisecond-1)/time.Millisecond), 1)
	unit := int64(1)
	for ms/unit >= 100 {
		unit *= 10
	}
	return min((ms+unit-1)/unit*unit, MaxDelay.Milliseconds())
}

// publisher is a channel in confirm mode shared by all publishes of a
// session, and the listener of the messages the broker returns.
type publisher struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	// barrier lets a publisher wait until the listener has recorded
	// every return it was handed.
	barrier chan chan struct{}
	gone    chan struct{} // closed when the listener ends

	mu       sync.Mutex
	returned map[string]amqp.Return // by message ID
}

// publisher returns the session's publisher, opening a new channel if the
// last one was closed (a channel error closes only its channel).
func (s *session) publisher() (*publisher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != nil && !s.pub.ch.IsClosed() {
		return s.pub, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConnLost, err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("amqpq: confirm mode: %w", err)
	}
	p := &publisher{
		ch: ch,
		// Unbuffered on purpose: the client library's reader hands a
		// return over before it reads the confirmation that follows it.
		returns:  ch.NotifyReturn(make(chan amqp.Return)),
		barrier:  make(chan chan struct{}),
		gone:     make(chan struct{}),
		returned: map[string]amqp.Return{},
	}
	s.q.wg.Add(1)
	go p.listen(&s.q.wg)
	s.pub = p
	return p, nil
}

// listen records returned messages until the channel closes.
func (p *publisher) listen(wg *sync.WaitGroup) {
	defer wg.Done()
	defer close(p.gone)
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				return
			}
			p.mu.Lock()
			p.returned[r.MessageId] = r
			p.mu.Unlock()
		case reply := <-p.barrier:
			close(reply)
		}
	}
}

// wasReturned reports whether the broker returned the message with id.
// Call it after the message's confirmation: RabbitMQ sends basic.return
// before basic.ack, the client's reader hands the return to listen before
// it handles the ack, and the barrier waits until listen has recorded it.
func (p *publisher) wasReturned(id string) (amqp.Return, bool) {
	reply := make(chan struct{})
	select {
	case p.barrier <- reply:
		<-reply
	case <-p.gone:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.returned[id]
	delete(p.returned, id)
	return r, ok
}

// publish sends msg (mandatory) and waits for the confirmation.
func (s *session) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	p, err := s.publisher()
	if err != nil {
		return err
	}
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
	if err != nil {
		if p.ch.IsClosed() {
			return fmt.Errorf("%w: %w", errConnLost, err)
		}
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		// The client nacks what is pending when the channel closes.
		if p.ch.IsClosed() {
			return fmt.Errorf("%w before the broker confirmed", errConnLost)
		}
		return errNacked
	}
	if r, returned := p.wasReturned(msg.MessageId); returned {
		return fmt.Errorf("%w: exchange %q, routing key %q: %s", errUnroutable, exchange, key, r.ReplyText)
	}
	return nil
}
