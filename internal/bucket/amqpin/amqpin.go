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
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/queue"
)

// Handler takes one notification body, and whether RabbitMQ delivered it
// before.
type Handler interface {
	HandleDelivery(ctx context.Context, body []byte, redelivered bool) (bucket.Outcome, error)
}

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

// Run consumes until ctx ends. It returns nil then; configuration errors
// are returned at once, broker outages are retried.
func Run(ctx context.Context, cfg Config, h Handler, log *slog.Logger) error {
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
	backoff := 100 * time.Millisecond
	for {
		err := consume(ctx, cfg, h, log)
		if ctx.Err() != nil {
			return nil
		}
		log.LogAttrs(ctx, slog.LevelWarn, "event consumer disconnected; reconnecting",
			slog.String("url", redact(cfg.URL)), slog.String("error", err.Error()), slog.Duration("in", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// consume runs one connection's life.
func consume(ctx context.Context, cfg Config, h Handler, log *slog.Logger) error {
	conn, err := amqp.DialConfig(cfg.URL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "lazaret-events"}})
	if err != nil {
		return fmt.Errorf("amqpin: dial %s: %w", redact(cfg.URL), err)
	}
	defer conn.Close()
	ch, err := declare(conn, cfg)
	if err != nil {
		return err
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("amqpin: qos: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, cfg.Queue, "lazaret-events", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("amqpin: consume %s: %w", cfg.Queue, err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	log.LogAttrs(ctx, slog.LevelInfo, "consuming S3 events", slog.String("queue", cfg.Queue),
		slog.Int("concurrency", cfg.Concurrency))
	// Handlers finish what they hold before the connection closes (the
	// deferred Close), so that their acknowledgements reach RabbitMQ.
	// When ctx ends, running handlers get queue.DefaultSoftStop to
	// finish their scans before their context is cancelled too.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(queue.DefaultSoftStop, hcancel)
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	defer stop()
	defer hcancel()
	work := make(chan amqp.Delivery)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(work)
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				handle(hctx, d, h, log)
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			if err == nil {
				return errors.New("amqpin: connection closed")
			}
			return fmt.Errorf("amqpin: connection closed: %w", err)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("amqpin: delivery channel closed")
			}
			select {
			case work <- d:
			case <-ctx.Done():
				// Not taken: unacknowledged, RabbitMQ delivers it again.
				return nil
			}
		}
	}
}

// handle acknowledges a message only once its jobs are queued.
func handle(ctx context.Context, d amqp.Delivery, h Handler, log *slog.Logger) {
	out, err := h.HandleDelivery(ctx, d.Body, d.Redelivered)
	switch {
	case err == nil:
		if err := d.Ack(false); err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "ack failed; the event may come again", slog.String("error", err.Error()))
		}
		log.LogAttrs(ctx, slog.LevelDebug, "events handled", slog.Int("queued", out.Queued),
			slog.Int("scanned", out.Scanned), slog.Int("duplicates", out.Duplicates), slog.Int("ignored", out.Ignored))
	case errors.Is(err, bucket.ErrMalformed):
		// Never handleable: to the dead-letter queue, not back.
		log.LogAttrs(ctx, slog.LevelWarn, "malformed event dead-lettered", slog.String("error", err.Error()))
		d.Reject(false)
	default:
		// The store or the job queue failed: let RabbitMQ deliver it
		// again, after a pause so that an outage is not a hot loop.
		log.LogAttrs(ctx, slog.LevelWarn, "event will be retried", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		d.Nack(false, true)
	}
}

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

// redact hides the password in an AMQP URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid url>"
	}
	return u.Redacted()
}
