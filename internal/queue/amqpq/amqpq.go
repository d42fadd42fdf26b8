// Package amqpq is the RabbitMQ (AMQP 0-9-1) driver of queue.Queue, for
// RabbitMQ 3.10 or later.
//
// Layout on the broker (all declared by Open and again after every
// reconnect, so a new deployment needs no setup):
//
//   - the job queue (default lazaret.jobs): a durable quorum queue. Jobs
//     are published persistent (delivery mode 2) with publisher confirms
//     and the mandatory flag, so Publish returns nil only once the queue
//     has the message on disk. Its overflow mode is reject-publish, so a
//     length limit set by policy makes Publish fail instead of dropping
//     the oldest jobs.
//   - the dead-letter queue (default lazaret.jobs.dead): a durable quorum
//     queue that receives terminated messages (Term, a Nak or an unsettled
//     handler on a final delivery, payloads that are not jobs, messages
//     past their abandoned deliveries), each with x-lazaret-reason and
//     x-lazaret-attempts headers, so nothing is dropped silently. The job queue also dead-letters there (at least
//     once) whatever the broker itself removes, such as messages over a
//     delivery limit set by policy.
//   - delay queues (lazaret.jobs.delay.<ms>ms), one per distinct Nak delay,
//     declared when first needed: quorum queues whose x-message-ttl is that
//     delay and that dead-letter expired messages back into the job queue.
//     AMQP has no delayed delivery; a queue per delay is correct where one
//     queue with per-message TTLs is not (a message only expires at the
//     head of its queue, so a 10-minute retry would hold up a 5-second one
//     behind it). Delays are rounded up to two significant digits to bound
//     how many such queues exist, and unused ones expire (x-expires).
//
// Attempts: a quorum queue counts how often a message went back to the
// queue (x-delivery-count, set by RabbitMQ when a consumer's channel closes
// with the message unacknowledged, i.e. the worker died). A Nak republishes
// the message (to a delay queue) and acknowledges the original; the copy
// carries the attempts made so far in x-lazaret-attempts. So a delivery's
// Attempt is x-lazaret-attempts + x-delivery-count + 1. A message that
// comes back past MaxDeliver (its final delivery's worker died) reaches a
// handler as abandoned (queue.Message.Abandoned), which records the job's
// end without running it; one that comes back past those
// queue.AbandonedDeliveries deliveries too is dead-lettered without
// reaching a handler.
//
// Ack deadline: AMQP has none (RabbitMQ's consumer_timeout is global,
// coarse, and closes the whole channel). A worker process that dies or
// loses its connection gets its messages redelivered by the broker as
// soon as the connection closes (AMQP heartbeats detect a silent peer).
// A handler that hangs in a live process is caught here instead: each
// delivery has a local deadline (Config.AckWait) that InProgress pushes
// back; when it passes, the driver republishes the message for another
// consumer and keeps the original unacknowledged until the hung handler
// returns, so the broker sends its consumer no more than its free
// handlers can take.
//
// RabbitMQ's own consumer_timeout (30 minutes by default) still applies:
// a handler that runs longer, heartbeats or not, has its channel closed by
// the broker and its messages redelivered. Raise it on the broker for
// analyzers that run that long.
//
// Stats: AMQP reports a queue's ready messages but not its unacknowledged
// ones, so InFlight counts what this process holds plus the delay queues
// it has used; the management API would give the broker-wide figure.
//
// Reconnects: when the connection drops (a broker restart), the driver
// reconnects with backoff, declares the layout again, and consumers
// resume; Publish waits for the connection within its context and
// retries. Messages delivered on the lost connection are redelivered by
// the broker; their handlers' settlements fail.
package amqpq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/redact"
)

var _ queue.Queue = (*Queue)(nil)

// Defaults for the zero values of Config.
const (
	DefaultQueue = "lazaret.jobs"
	// DefaultDeadLetterSuffix makes the default dead-letter queue name
	// from the queue name.
	DefaultDeadLetterSuffix = ".dead"
	// DefaultHeartbeat is the AMQP heartbeat: a dead peer is noticed
	// after about two of them.
	DefaultHeartbeat = 10 * time.Second
	// DefaultDialTimeout bounds a connection attempt (TCP, TLS and AMQP
	// handshakes) when the context has no earlier deadline.
	DefaultDialTimeout = 30 * time.Second
	// MaxDelay bounds a Nak delay.
	MaxDelay = 24 * time.Hour
)

// Reconnect delays: doubling from the first to the last.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// fetchWait is how long one Fetch waits for a message (or a connection)
// before it returns to the consume loop, which then fetches again.
const fetchWait = 2 * time.Second

// settleTimeout bounds what the driver publishes on its own behalf
// (redelivering a message whose deadline passed, releasing unhandled ones
// at stop).
const settleTimeout = 5 * time.Second

// Headers the driver writes.
const (
	hdrAttempts     = "x-lazaret-attempts"
	hdrReason       = "x-lazaret-reason"
	hdrQueue        = "x-lazaret-queue"
	hdrTerminatedAt = "x-lazaret-terminated-at"
	// hdrDeliveryCount is set by quorum queues on redeliveries.
	hdrDeliveryCount = "x-delivery-count"
)

// Config configures the queue.
type Config struct {
	// URL of the broker: amqp://user:password@host:5672/vhost, or
	// amqps:// for TLS. The password is never logged, nor shown in
	// errors.
	URL string
	// TLS files for amqps://: a CA bundle to verify the server (empty:
	// the system roots) and a client certificate and key (optional).
	TLSCAFile, TLSCertFile, TLSKeyFile string

	// Queue is the job queue; empty means DefaultQueue. Tests use unique
	// names to share a broker.
	Queue string
	// Exchange, if set, is the exchange Publish sends to (declared
	// durable, of ExchangeType, default "direct"), bound to Queue with
	// RoutingKey (default: the queue name). Empty means the default
	// exchange, straight to the queue.
	Exchange, ExchangeType, RoutingKey string
	// DeadLetterExchange receives terminated messages with routing key
	// DeadLetterQueue; empty means the default exchange. A named one is
	// declared as a durable direct exchange and bound to DeadLetterQueue.
	DeadLetterExchange string
	// DeadLetterQueue holds terminated messages; empty means Queue +
	// DefaultDeadLetterSuffix.
	DeadLetterQueue string

	queue.Redelivery
	// Heartbeat is the AMQP heartbeat interval; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Name is the connection name the broker shows; empty means
	// "lazaret".
	Name string
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("amqpq: config: url is required")
	}
	u, err := amqp.ParseURI(c.URL)
	if err != nil {
		// ParseURI's errors do not quote the URL; keep it that way.
		return fmt.Errorf("amqpq: config: url: %w", err)
	}
	if u.Scheme != "amqps" && (c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "") {
		return errors.New("amqpq: config: tls files need an amqps:// url")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("amqpq: config: tls_cert_file and tls_key_file go together")
	}
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.Exchange != "" {
		if c.ExchangeType == "" {
			c.ExchangeType = amqp.ExchangeDirect
		}
		if c.RoutingKey == "" {
			c.RoutingKey = c.Queue
		}
	} else if c.RoutingKey != "" || c.ExchangeType != "" {
		return errors.New("amqpq: config: routing_key and exchange_type need an exchange")
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = c.Queue + DefaultDeadLetterSuffix
	}
	c.Redelivery = c.Redelivery.WithDefaults()
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Name == "" {
		c.Name = "lazaret"
	}
	switch {
	case c.DeadLetterQueue == c.Queue:
		return errors.New("amqpq: config: dead_letter_queue must differ from queue")
	case c.Heartbeat < time.Second:
		return errors.New("amqpq: config: heartbeat must be at least 1s")
	}
	if err := c.Redelivery.Check(MaxDelay); err != nil {
		return fmt.Errorf("amqpq: config: %w", err)
	}
	return nil
}

// Queue is a queue.Queue on RabbitMQ. Create it with Open.
type Queue struct {
	cfg     Config
	log     *slog.Logger
	amqpCfg amqp.Config
	addr    string // the URL without its password, for logs and errors

	closed atomic.Bool
	// ctx is cancelled by Close, ending reconnects; done is its Done
	// channel: waits for a connection end, fetches return.
	ctx    context.Context
	cancel context.CancelFunc
	done   <-chan struct{}
	// wg counts the driver's goroutines (reconnect loop, return
	// listeners) that Close waits for.
	wg sync.WaitGroup

	mu   sync.Mutex
	sess *session // nil while disconnected
	// changed is closed (and replaced) whenever sess changes, waking
	// those that wait for a connection.
	changed chan struct{}

	// inFlight counts deliveries this process holds: received and not
	// yet settled, redelivered elsewhere or lost with their channel.
	inFlight atomic.Int64
	seq      atomic.Uint64 // message and consumer IDs
	idPrefix string

	delayMu sync.Mutex
	delays  map[string]time.Time // delay queue name → last declared
}

// Open connects to the broker and declares the queues. ctx bounds the
// first connection: a wrong URL, password or TLS setup fails here rather
// than in the background.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Queue, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	q := &Queue{
		cfg:      cfg,
		log:      log,
		addr:     redact.URLs(cfg.URL),
		changed:  make(chan struct{}),
		delays:   map[string]time.Time{},
		idPrefix: fmt.Sprintf("%x", time.Now().UnixNano()),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.done = q.ctx.Done()
	q.amqpCfg = amqp.Config{
		Heartbeat:  cfg.Heartbeat,
		Properties: amqp.NewConnectionProperties(),
	}
	q.amqpCfg.Properties.SetClientConnectionName(cfg.Name)
	if strings.HasPrefix(strings.ToLower(cfg.URL), "amqps://") {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		q.amqpCfg.TLSClientConfig = tc
	}
	s, err := q.connect(ctx)
	if err != nil {
		q.cancel()
		return nil, err
	}
	q.setSession(s)
	log.Info("connected to RabbitMQ", "server", q.addr, "queue", cfg.Queue)
	q.wg.Add(1)
	go q.maintain(s)
	return q, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("amqpq: tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("amqpq: tls ca file %s: no PEM certificates", cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("amqpq: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// connect dials the broker, declares the layout and opens the publisher
// channel.
func (q *Queue) connect(ctx context.Context) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("amqpq: connect %s: %w", q.addr, err)
	}
	deadline := time.Now().Add(DefaultDialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c := q.amqpCfg
	c.Dial = func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Deadline: deadline}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Covers the TLS and AMQP handshakes; the client library clears
		// it once the connection is open and heartbeats take over.
		if err := conn.SetDeadline(deadline); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	conn, err := amqp.DialConfig(q.cfg.URL, c)
	if err != nil {
		return nil, fmt.Errorf("amqpq: connect %s: %w", q.addr, redactErr(err, q.cfg.URL))
	}
	s := &session{q: q, conn: conn, closeErr: conn.NotifyClose(make(chan *amqp.Error, 1))}
	if err := s.declare(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := s.publisher(); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// maintain reconnects whenever the connection of s closes, until the
// queue is closed.
func (q *Queue) maintain(s *session) {
	defer q.wg.Done()
	for {
		var err *amqp.Error
		select {
		case <-q.done:
			return
		case err = <-s.closeErr:
		}
		if q.closed.Load() {
			return
		}
		q.setSession(nil)
		q.log.Warn("RabbitMQ connection lost, reconnecting", "server", q.addr, "err", err)
		s = q.reconnect()
		if s == nil {
			return
		}
		q.setSession(s)
		q.log.Info("RabbitMQ reconnected", "server", q.addr)
	}
}

// reconnect connects again with backoff; nil means the queue was closed.
func (q *Queue) reconnect() *session {
	wait := reconnectMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-q.done:
			t.Stop()
			return nil
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(q.ctx, DefaultDialTimeout)
		s, err := q.connect(ctx)
		cancel()
		if err == nil {
			if q.closed.Load() {
				s.conn.Close()
				return nil
			}
			return s
		}
		if q.closed.Load() {
			return nil
		}
		// The first seconds of an outage (a broker restart) are
		// expected; after that, say so every reconnectMax.
		level := slog.LevelDebug
		if wait == reconnectMax {
			level = slog.LevelWarn
		}
		q.log.Log(context.Background(), level, "RabbitMQ reconnect failed", "err", err, "retry_in", wait)
		wait = min(2*wait, reconnectMax)
	}
}

func (q *Queue) setSession(s *session) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sess = s
	close(q.changed)
	q.changed = make(chan struct{})
}

// session returns the live session, waiting for a reconnect within ctx.
func (q *Queue) session(ctx context.Context) (*session, error) {
	for {
		if q.closed.Load() {
			return nil, queue.ErrClosed
		}
		q.mu.Lock()
		s, changed := q.sess, q.changed
		q.mu.Unlock()
		if s != nil && !s.conn.IsClosed() {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the connection: %w", ctx.Err())
		case <-q.done:
			return nil, queue.ErrClosed
		}
	}
}

// Publish implements queue.Queue. It returns once the broker has confirmed
// the message (a quorum queue confirms after a majority has it on disk).
// While the connection is down it waits and retries, within ctx.
func (q *Queue) Publish(ctx context.Context, m queue.Message) error {
	if q.closed.Load() {
		return fmt.Errorf("amqpq: publish: %w", queue.ErrClosed)
	}
	body, err := queue.EncodeMessage(m)
	if err != nil {
		return fmt.Errorf("amqpq: publish: %w", err)
	}
	ex, key := q.cfg.Exchange, q.cfg.RoutingKey
	if ex == "" {
		key = q.cfg.Queue
	}
	if err := q.publish(ctx, ex, key, q.message(body, nil)); err != nil {
		return fmt.Errorf("amqpq: publish: %w", err)
	}
	return nil
}

// message returns a persistent message with a fresh ID.
func (q *Queue) message(body []byte, headers amqp.Table) amqp.Publishing {
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    fmt.Sprintf("%s-%d", q.idPrefix, q.seq.Add(1)),
		Timestamp:    time.Now(),
		Body:         body,
	}
}

// publish sends msg and waits for the broker's confirmation, retrying
// across reconnects until ctx is done.
func (q *Queue) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	for channelErrs := 0; ; {
		s, err := q.session(ctx)
		if err != nil {
			return err
		}
		err = s.publish(ctx, exchange, key, msg)
		if err == nil || !errors.Is(err, errConnLost) || ctx.Err() != nil {
			return err
		}
		if !s.conn.IsClosed() {
			// Only the channel closed: a channel error, which this
			// message may well cause again (an exchange that is gone).
			// Try a new channel, but not forever.
			if channelErrs++; channelErrs > 2 {
				return err
			}
		}
		// The connection went while the message was on its way: it may
		// or may not be stored. Publishing again may duplicate it, which
		// at-least-once delivery allows; losing it would not be allowed.
		select {
		case <-ctx.Done():
			return err
		case <-q.done:
			return queue.ErrClosed
		case <-time.After(reconnectMin):
		}
	}
}

// publishOnce is publish without retries, for copies of a delivery: once
// the connection is gone, so is the delivery's channel, and the broker
// requeues the original.
func (q *Queue) publishOnce(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	s, err := q.session(ctx)
	if err != nil {
		return err
	}
	return s.publish(ctx, exchange, key, msg)
}

// publishDelayed publishes msg to the delay queue for d.
func (q *Queue) publishDelayed(ctx context.Context, d time.Duration, msg amqp.Publishing) error {
	s, err := q.session(ctx)
	if err != nil {
		return err
	}
	name, err := s.delayQueue(d, false)
	if err != nil {
		return err
	}
	err = s.publish(ctx, "", name, msg)
	if errors.Is(err, errUnroutable) {
		// The delay queue is gone (deleted by hand, or a broker that
		// lost its state): declare it again.
		if name, err = s.delayQueue(d, true); err == nil {
			err = s.publish(ctx, "", name, msg)
		}
	}
	return err
}

// Consume implements queue.Queue. Each Consume call has its own channel
// with a prefetch of opts.Concurrency, so the broker sends it no more
// messages than it has handlers for. Heartbeats default to a third of
// AckWait.
func (q *Queue) Consume(ctx context.Context, h queue.Handler, opts queue.ConsumeOptions) error {
	if q.closed.Load() {
		return fmt.Errorf("amqpq: consume: %w", queue.ErrClosed)
	}
	src := &source{q: q, prefetch: max(opts.Concurrency, 1)}
	// Stop the broker's pushes as soon as ctx is done rather than when
	// the handlers have finished: what it sent meanwhile would only wait
	// here.
	stop := context.AfterFunc(ctx, src.cancel)
	defer src.close()
	defer stop()
	return queue.RunConsumer(ctx, src, h, opts, q.cfg.AckWait/3, q.log)
}

// Stats implements queue.Queue. Pending is the job queue's ready count.
// InFlight counts the deliveries this process holds (AMQP does not report
// a queue's unacknowledged count; the management API does) plus the
// messages waiting in the delay queues this process has used.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if q.closed.Load() {
		return queue.Stats{}, fmt.Errorf("amqpq: stats: %w", queue.ErrClosed)
	}
	s, err := q.session(ctx)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("amqpq: stats: %w", err)
	}
	n, err := s.depth(q.cfg.Queue)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("amqpq: stats: %w", q.mapErr(err))
	}
	st := queue.Stats{Pending: int64(n), InFlight: q.inFlight.Load()}
	for _, name := range q.delayQueues() {
		n, err := s.depth(name)
		var aerr *amqp.Error
		switch {
		case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
			// Expired (unused) since this process declared it.
		case err != nil:
			return queue.Stats{}, fmt.Errorf("amqpq: stats: %w", q.mapErr(err))
		default:
			st.InFlight += int64(n)
		}
	}
	return st, nil
}

// Ping implements queue.Queue: the connection is up and the job queue
// exists.
func (q *Queue) Ping(ctx context.Context) error {
	if q.closed.Load() {
		return fmt.Errorf("amqpq: ping: %w", queue.ErrClosed)
	}
	q.mu.Lock()
	s := q.sess
	q.mu.Unlock()
	if s == nil || s.conn.IsClosed() {
		return fmt.Errorf("amqpq: ping: not connected to %s", q.addr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqpq: ping: %w", err)
	}
	if _, err := s.depth(q.cfg.Queue); err != nil {
		return fmt.Errorf("amqpq: ping: %w", q.mapErr(err))
	}
	return nil
}

// Close implements queue.Queue: it closes the connection (the broker
// requeues what was delivered and not acknowledged) and waits for the
// driver's goroutines. It is safe to call twice.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	q.cancel()
	q.mu.Lock()
	s := q.sess
	q.mu.Unlock()
	if s != nil {
		_ = s.conn.Close()
	}
	q.wg.Wait()
	return nil
}

// mapErr makes errors of a closed queue wrap queue.ErrClosed.
func (q *Queue) mapErr(err error) error {
	if q.closed.Load() && !errors.Is(err, queue.ErrClosed) {
		return fmt.Errorf("%w: %w", queue.ErrClosed, err)
	}
	return err
}

// redactErr removes the password of rawURL from err's text, should a
// library have quoted it.
func redactErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return redactedError{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

// redactedError shows a redacted message and still unwraps to the
// original error, so that errors.Is and errors.As keep working.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
