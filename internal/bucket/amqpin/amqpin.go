// Package amqpin reads S3 / MinIO event notifications from RabbitMQ —
// MinIO's AMQP target, bucket-av-scanner's topology: a topic exchange, a
// durable queue bound to it — and hands each message to the bucket
// intake. A message is acknowledged only after the intake has queued its
// jobs (or, scanning in place, stored and acted on their verdicts); one
// that can never be handled (malformed JSON) is rejected to the
// dead-letter queue, and the consumer goes on. Connections that drop are
// re-established with backoff.
package amqpin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/redact"
)

// Config says where the events are.
type Config struct {
	URL        string
	Queue      string
	Exchange   string // a topic exchange; "" consumes the queue as it is
	RoutingKey string
	// Prefetch bounds unacknowledged messages; 0 means 16, and it is
	// raised to at least twice Concurrency.
	Prefetch int
	// Concurrency is how many messages are handled at once; 0 means 1.
	// A handler that scans in place (bucket.Config.Runner) needs as many
	// as there are scans to run side by side.
	Concurrency int
}

// DeadLetterSuffix names the dead-letter queue: Queue + suffix.
const DeadLetterSuffix = ".dead"

// Reconnect delays: doubling from the first to the last while RabbitMQ
// cannot be reached.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 10 * time.Second
)

// Run consumes until ctx ends. It returns nil then; configuration errors
// are returned at once, broker outages are retried. Handlers run with
// queue.RunRawConsumer; when ctx ends, running handlers get
// queue.DefaultSoftStop to finish their scans before their context is
// cancelled too, and the connection closes only after they have returned,
// so that their acknowledgements reach RabbitMQ.
func Run(ctx context.Context, cfg Config, h bucket.DeliveryHandler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" || cfg.Queue == "" {
		return errors.New("amqpin: url and queue are required")
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 16
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	cfg.Prefetch = max(cfg.Prefetch, 2*cfg.Concurrency)
	src := &source{cfg: cfg, log: log, backoff: reconnectMin}
	defer src.close()
	// RabbitMQ has no ack deadline to push back: no heartbeats.
	err := queue.RunRawConsumer(ctx, src, bucket.RawHandler(h, log), queue.ConsumeOptions{Concurrency: cfg.Concurrency}, -1, log)
	if err != nil {
		return fmt.Errorf("amqpin: %w", err)
	}
	return nil
}

// source is the queue.Source of Run: a consumer on one connection, opened
// by Fetch, and opened again after the connection is lost. Only the
// consume loop calls Fetch, one call at a time, and close after it.
type source struct {
	cfg     Config
	log     *slog.Logger
	backoff time.Duration // before the next reconnection

	conn       *amqp.Connection // nil when not connected
	closed     <-chan *amqp.Error
	deliveries <-chan amqp.Delivery
}

var _ queue.Source[queue.RawDelivery] = (*source)(nil)

// Fetch implements queue.Source: it waits for a first message, or for the
// connection to be lost, and then takes what has already arrived, up to n.
func (s *source) Fetch(ctx context.Context, n int, deliver func(queue.RawDelivery)) error {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return s.pause(ctx, err)
		}
	}
	for got := range n {
		var d amqp.Delivery
		ok := true
		if got == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-s.closed:
				if err == nil {
					return s.pause(ctx, errors.New("amqpin: connection closed"))
				}
				return s.pause(ctx, fmt.Errorf("amqpin: connection closed: %w", err))
			case d, ok = <-s.deliveries:
			}
		} else {
			select {
			case d, ok = <-s.deliveries:
			default:
				return nil
			}
		}
		if !ok {
			return s.pause(ctx, errors.New("amqpin: delivery channel closed"))
		}
		deliver(delivery{d})
	}
	return nil
}

// Done implements queue.Source: the source is never closed under the
// consume loop.
func (s *source) Done() <-chan struct{} { return nil }

// connect opens the connection and the consumer.
func (s *source) connect(ctx context.Context) error {
	cfg := s.cfg
	conn, err := amqp.DialConfig(cfg.URL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "lazaret-events"}})
	if err != nil {
		return fmt.Errorf("amqpin: dial %s: %w", redact.URLs(cfg.URL), err)
	}
	deliveries, err := consume(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return err
	}
	s.conn, s.deliveries = conn, deliveries
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.backoff = reconnectMin
	s.log.LogAttrs(ctx, slog.LevelInfo, "consuming S3 events", slog.String("queue", cfg.Queue),
		slog.Int("concurrency", cfg.Concurrency))
	return nil
}

// consume declares the queue and starts consuming it on a new channel.
func consume(ctx context.Context, conn *amqp.Connection, cfg Config) (<-chan amqp.Delivery, error) {
	ch, err := declare(conn, cfg)
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("amqpin: qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, cfg.Queue, "lazaret-events", false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("amqpin: consume %s: %w", cfg.Queue, err)
	}
	return deliveries, nil
}

// pause drops the connection after err, logs, and waits before the next
// Fetch connects again. It returns nil, or ctx's error once ctx is done:
// then the connection stays open until close, for the handlers' acks (the
// consumer is cancelled with ctx, which closes its delivery channel).
func (s *source) pause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.close()
	s.log.LogAttrs(ctx, slog.LevelWarn, "event consumer disconnected; reconnecting",
		slog.String("url", redact.URLs(s.cfg.URL)), slog.String("error", err.Error()), slog.Duration("in", s.backoff))
	t := time.NewTimer(s.backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	s.backoff = min(2*s.backoff, reconnectMax)
	return nil
}

// close closes the connection: RabbitMQ requeues the messages it sent
// and no handler acknowledged.
func (s *source) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// delivery is one RabbitMQ message as a queue.RawDelivery.
type delivery struct{ d amqp.Delivery }

func (d delivery) Body() []byte      { return d.d.Body }
func (d delivery) Redelivered() bool { return d.d.Redelivered }

// Ack acknowledges the message. RabbitMQ does not confirm acks: nil means
// the ack was sent on a live channel.
func (d delivery) Ack(context.Context) error {
	if err := d.d.Ack(false); err != nil {
		return fmt.Errorf("amqpin: ack: %w", err)
	}
	return nil
}

// Nak requeues the message. RabbitMQ cannot requeue with a delay, so Nak
// holds the message for delay first (or until ctx ends).
func (d delivery) Nak(ctx context.Context, delay time.Duration) error {
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if err := d.d.Nack(false, true); err != nil {
		return fmt.Errorf("amqpin: nak: %w", err)
	}
	return nil
}

// Term rejects the message without requeueing it: to the dead-letter
// queue, where the queue has one (see declare).
func (d delivery) Term(context.Context, string) error {
	if err := d.d.Reject(false); err != nil {
		return fmt.Errorf("amqpin: term: %w", err)
	}
	return nil
}

// InProgress does nothing: RabbitMQ has no ack deadline to push back.
func (d delivery) InProgress(context.Context) error { return nil }

// declare makes sure the queue exists and is bound. A queue that exists
// already (bucket-av-scanner's init script made it) is used as it is, so
// that lazaret never fails on arguments it would have chosen differently;
// a new one gets a dead-letter queue.
func declare(conn *amqp.Connection, cfg Config) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqpin: channel: %w", err)
	}
	if _, err := ch.QueueDeclarePassive(cfg.Queue, true, false, false, false, nil); err != nil {
		// A failed passive declare closes the channel: open another.
		if ch, err = conn.Channel(); err != nil {
			return nil, fmt.Errorf("amqpin: channel: %w", err)
		}
		dead := cfg.Queue + DeadLetterSuffix
		if _, err := ch.QueueDeclare(dead, true, false, false, false, nil); err != nil {
			return nil, fmt.Errorf("amqpin: declare %s: %w", dead, err)
		}
		args := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
		if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, args); err != nil {
			return nil, fmt.Errorf("amqpin: declare %s: %w", cfg.Queue, err)
		}
	}
	if cfg.Exchange == "" {
		return ch, nil
	}
	if err := ch.ExchangeDeclare(cfg.Exchange, "topic", true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("amqpin: declare exchange %s: %w", cfg.Exchange, err)
	}
	if err := ch.QueueBind(cfg.Queue, cfg.RoutingKey, cfg.Exchange, false, nil); err != nil {
		return nil, fmt.Errorf("amqpin: bind %s to %s: %w", cfg.Queue, cfg.Exchange, err)
	}
	return ch, nil
}
