package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/redact"
)

// Results are also published to brokers, on the routing key / subject
// "lazaret.results.<verdict>", so that consumers can bind to all results
// or to one verdict ("lazaret.results.infected").

// ResultsSubject returns the routing key / subject for a verdict.
func ResultsSubject(prefix, verdict string) string {
	if prefix == "" {
		prefix = "lazaret.results"
	}
	if verdict == "" {
		verdict = "none"
	}
	return prefix + "." + verdict
}

// AMQPPublisher publishes to a RabbitMQ exchange with publisher confirms:
// Publish returns after the broker took the message. It redials after a
// failure. It is safe for concurrent use.
type AMQPPublisher struct {
	url, exchange string
	mu            sync.Mutex
	conn          *amqp.Connection
	ch            *amqp.Channel
}

// NewAMQPPublisher returns a publisher to exchange (a topic exchange,
// declared durable if missing). No connection is made until the first
// Publish.
func NewAMQPPublisher(rawURL, exchange string) (*AMQPPublisher, error) {
	if _, err := url.Parse(rawURL); err != nil || exchange == "" {
		return nil, errors.New("notify: amqp: want a URL and an exchange")
	}
	return &AMQPPublisher{url: rawURL, exchange: exchange}, nil
}

func (p *AMQPPublisher) channel() (*amqp.Channel, error) {
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	p.closeLocked()
	conn, err := amqp.DialConfig(p.url, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "lazaret-results"}})
	if err != nil {
		return nil, fmt.Errorf("notify: amqp: dial %s: %w", redact.URL(p.url), err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		err = ch.ExchangeDeclare(p.exchange, "topic", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify: amqp: channel: %w", err)
	}
	p.conn, p.ch = conn, ch
	return ch, nil
}

// Publish sends body with the delivery id as its message ID and waits for
// the broker's confirmation.
func (p *AMQPPublisher) Publish(ctx context.Context, subject, id string, body []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, err := p.channel()
	if err != nil {
		return err
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, subject, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Timestamp: time.Now(), Body: body,
	})
	if err != nil {
		p.closeLocked()
		return fmt.Errorf("notify: amqp: publish: %w", err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		p.closeLocked()
		return fmt.Errorf("notify: amqp: confirm: %w", err)
	}
	if !ok {
		return errors.New("notify: amqp: the broker refused the message")
	}
	return nil
}

func (p *AMQPPublisher) closeLocked() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.ch = nil, nil
}

// Close closes the connection.
func (p *AMQPPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
	return nil
}

// NATSPublisher publishes to NATS subjects. The delivery id goes in the
// Nats-Msg-Id header, so a JetStream stream capturing the subjects drops
// repeats. It is safe for concurrent use.
type NATSPublisher struct {
	nc *nats.Conn
}

// NewNATSPublisher connects to NATS (reconnecting by itself later).
func NewNATSPublisher(rawURL string) (*NATSPublisher, error) {
	nc, err := nats.Connect(rawURL, nats.Name("lazaret-results"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, fmt.Errorf("notify: nats: connect %s: %w", redact.URLs(rawURL), err)
	}
	return &NATSPublisher{nc: nc}, nil
}

// Publish sends body and flushes, so that an error reaches the caller.
func (p *NATSPublisher) Publish(ctx context.Context, subject, id string, body []byte) error {
	msg := nats.NewMsg(subject)
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Data = body
	if err := p.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("notify: nats: publish: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		// FlushWithContext wants a deadline: bound the wait ourselves.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("notify: nats: flush: %w", err)
	}
	return nil
}

// Close drains the connection.
func (p *NATSPublisher) Close() error { p.nc.Close(); return nil }
