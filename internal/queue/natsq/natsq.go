// Package natsq is the NATS JetStream driver of queue.Queue. It talks to
// an external NATS server (or cluster) with JetStream enabled, or runs one
// in-process (Embedded), which is lazaret's default queue: file storage
// under the data folder, no listener unless asked for, loopback only.
//
// Layout on the broker: one stream (default LAZARET_JOBS) with file
// storage and work-queue retention over one subject (default
// lazaret.jobs), and one durable pull consumer (default lazaret-workers)
// with explicit acks that every worker shares. Acked and terminated
// messages leave the stream.
//
// Deliveries: the consumer's max_deliver is Config.MaxDeliver plus
// queue.AbandonedDeliveries. Deliveries up to MaxDeliver are scan attempts;
// the server makes the ones after only when the final attempt was never
// settled (its worker died), and they reach the handler as abandoned, to
// record the job's end. Final and Abandoned follow the server's count of
// deliveries and its max_deliver, so that every worker agrees on them.
//
// Redelivery delays: a message whose worker stops answering comes back
// after AckWait; one that is Nak'ed comes back after Config.Backoff. The
// consumer's own JetStream BackOff is left unset on purpose: JetStream uses
// BackOff[n] as the ack deadline of delivery n+1, which would cut the
// deadline of a first attempt to the first (short) backoff step.
//
// RawSource fetches the messages of another JetStream consumer the same
// way, for consumers of messages that are not jobs.
package natsq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/redact"
)

var _ queue.Queue = (*Queue)(nil)

// Defaults for the zero values of Config.
const (
	DefaultStream   = "LAZARET_JOBS"
	DefaultSubject  = "lazaret.jobs"
	DefaultConsumer = "lazaret-workers"
	// DefaultFetchWait is how long one pull waits for messages before it
	// is renewed: short enough to notice a changed consumer soon, long
	// enough that an idle worker costs one request every few seconds.
	DefaultFetchWait = 5 * time.Second
	// DefaultReadyTimeout bounds an embedded server's start when ctx has
	// no deadline.
	DefaultReadyTimeout = 10 * time.Second
)

// Config configures the queue. Exactly one of URL and Embedded is set.
type Config struct {
	// URL names an external NATS server: "nats://127.0.0.1:4222", or
	// several, comma-separated. "tls://" requires TLS.
	URL string
	// User and Password, or Token, or CredsFile (a .creds file with JWT
	// and NKey seed), or NKeySeedFile authenticate to an external server.
	// Credentials are never logged.
	User, Password, Token string
	CredsFile             string
	NKeySeedFile          string
	// TLS files for an external server; empty means the system roots
	// and no client certificate.
	TLSCAFile, TLSCertFile, TLSKeyFile string

	// Embedded runs a NATS server in this process instead.
	Embedded *Embedded

	// Stream, Subject and Consumer name the JetStream objects; empty
	// means the defaults above. Tests use unique names to share a server.
	Stream, Subject, Consumer string
	// Replicas of the stream and consumer in a NATS cluster; 0 means 1.
	Replicas int
	queue.Redelivery
	// FetchWait is how long one pull request waits; 0 means
	// DefaultFetchWait.
	FetchWait time.Duration
	// Name is the client connection name shown by the server; empty
	// means "lazaret".
	Name string
}

// Embedded configures an in-process NATS server.
type Embedded struct {
	// StoreDir is where JetStream keeps its files (e.g.
	// <data-dir>/queue). Required.
	StoreDir string
	// Listen is a loopback host:port on which other local processes (a
	// `lazaret worker`, the nats CLI) can reach the server;
	// "127.0.0.1:0" picks a free port. Empty means no listener: only
	// this process connects, in-process. The embedded server has no
	// authentication, so other addresses are refused.
	Listen string
	// SyncAlways fsyncs every message before acknowledging the publish.
	// Off, a message survives a crash of lazaret (it is in the OS page
	// cache as soon as the publish returns) but not of the machine
	// within NATS's sync interval (2 minutes).
	SyncAlways bool
}

// Queue is a queue.Queue on NATS JetStream. Create it with Open.
type Queue struct {
	cfg Config
	// maxDeliver is the scan attempts the server's consumer allows.
	maxDeliver int
	log        *slog.Logger
	srv        *server.Server // nil unless embedded
	nc         *nats.Conn
	js         jetstream.JetStream
	cons       jetstream.Consumer
	closed     atomic.Bool
	// done is closed by Close; closing cancels running fetches.
	done chan struct{}
}

// Open connects to (or starts) the NATS server and creates or updates the
// stream and the durable consumer. ctx bounds the whole start.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Queue, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, log: log, done: make(chan struct{})}
	var err error
	if cfg.Embedded != nil {
		err = q.startEmbedded(ctx)
	} else {
		err = q.connect(ctx)
	}
	if err == nil {
		err = q.declare(ctx)
	}
	if err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (c *Config) setDefaults() error {
	if (c.URL == "") == (c.Embedded == nil) {
		return errors.New("natsq: config: set exactly one of url and embedded")
	}
	if e := c.Embedded; e != nil {
		if e.StoreDir == "" {
			return errors.New("natsq: config: embedded.store_dir is required")
		}
		if e.Listen != "" {
			host, port, err := net.SplitHostPort(e.Listen)
			if err != nil {
				return fmt.Errorf("natsq: config: embedded.listen: %w", err)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return fmt.Errorf("natsq: config: embedded.listen %q: only loopback addresses (the embedded server has no authentication)", e.Listen)
			}
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return fmt.Errorf("natsq: config: embedded.listen %q: bad port", e.Listen)
			}
		}
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	c.Redelivery = c.Redelivery.WithDefaults()
	if c.FetchWait == 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.Name == "" {
		c.Name = "lazaret"
	}
	switch {
	case c.FetchWait < 100*time.Millisecond:
		return errors.New("natsq: config: fetch_wait must be at least 100ms")
	case c.Replicas < 1:
		return errors.New("natsq: config: replicas must be at least 1")
	}
	if err := c.Redelivery.Check(0); err != nil {
		return fmt.Errorf("natsq: config: %w", err)
	}
	return nil
}

// startEmbedded starts the in-process server and connects to it without
// a socket.
func (q *Queue) startEmbedded(ctx context.Context) error {
	e := q.cfg.Embedded
	opts := &server.Options{
		ServerName: "lazaret-embedded",
		JetStream:  true,
		StoreDir:   e.StoreDir,
		SyncAlways: e.SyncAlways,
		// The server must not install signal handlers in our process
		// (STYLE: nothing below cmd/ calls signal.Notify).
		NoSigs:     true,
		DontListen: e.Listen == "",
	}
	if e.Listen != "" {
		host, port, _ := net.SplitHostPort(e.Listen) // checked by setDefaults
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("natsq: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{q.log.With("component", "nats-server")}, false, false, false)
	q.srv = srv
	srv.Start()
	wait := DefaultReadyTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		return fmt.Errorf("natsq: embedded server: not ready after %s", wait)
	}
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("natsq: embedded server: JetStream did not start (store dir %s)", e.StoreDir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(q.cfg.Name), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("natsq: connect embedded: %w", err)
	}
	q.nc = nc
	q.log.Info("embedded NATS server started", "store_dir", e.StoreDir, "listen", q.ClientURL())
	return nil
}

// connect connects to an external server.
func (q *Queue) connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsq: connect: %w", err)
	}
	c := q.cfg
	log := q.log
	opts := []nats.Option{
		nats.Name(c.Name),
		// Never give up reconnecting: a closed connection would stop every
		// worker for good, while a broker outage is temporary.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", redact.URLs(nc.ConnectedUrlRedacted()))
		}),
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return fmt.Errorf("natsq: nkey seed file: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return fmt.Errorf("natsq: connect %s: %w", redact.URLs(c.URL), err)
	}
	q.nc = nc
	log.Info("connected to NATS", "server", redact.URLs(nc.ConnectedUrlRedacted()), "version", nc.ConnectedServerVersion())
	return nil
}

// declare creates or updates the stream and the consumer, so that a new
// deployment needs no setup and a changed AckWait or MaxDeliver applies
// on the next start (a consumer made by a version without abandoned
// deliveries gets them).
func (q *Queue) declare(ctx context.Context) error {
	js, err := jetstream.New(q.nc)
	if err != nil {
		return fmt.Errorf("natsq: jetstream: %w", err)
	}
	q.js = js
	c := q.cfg
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "lazaret scan jobs",
		Subjects:    []string{c.Subject},
		Storage:     jetstream.FileStorage,
		// Work-queue retention: a message leaves the stream once acked
		// (or terminated), so the stream's size is the backlog.
		Retention: jetstream.WorkQueuePolicy,
		Replicas:  c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsq: stream %s: %w", c.Stream, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "lazaret workers",
		FilterSubject: c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    queue.MaxDeliveries(c.MaxDeliver),
		Replicas:      c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsq: consumer %s: %w", c.Consumer, err)
	}
	q.cons = cons
	// Another lazaret process may have configured the consumer
	// differently and last; Final and Abandoned must follow what the
	// server enforces.
	server := cons.CachedInfo().Config.MaxDeliver
	q.maxDeliver = scanAttempts(server, c.MaxDeliver)
	if server != queue.MaxDeliveries(c.MaxDeliver) {
		q.log.Warn("consumer max_deliver differs from configuration", "server", server,
			"config", c.MaxDeliver, "abandoned_deliveries", queue.AbandonedDeliveries)
	}
	return nil
}

// scanAttempts returns the scan attempts (queue.Redelivery.MaxDeliver) a
// consumer's max_deliver of server stands for; configured is this
// process's setting.
func scanAttempts(server, configured int) int {
	switch {
	case server <= 0:
		// No limit (set by hand): the server redelivers for ever, and
		// abandoned deliveries end the message.
		return configured
	case server <= queue.AbandonedDeliveries:
		// Too few for abandoned deliveries (set by hand): scan
		// attempts only.
		return server
	}
	return server - queue.AbandonedDeliveries
}

// ClientURL returns the URL other processes can connect to: the embedded
// server's listener, the connected external server, or "" for an
// embedded server without a listener.
func (q *Queue) ClientURL() string {
	if q.srv != nil {
		if q.cfg.Embedded.Listen == "" {
			return ""
		}
		return q.srv.ClientURL()
	}
	if q.nc != nil {
		return q.nc.ConnectedUrlRedacted()
	}
	return ""
}

// Publish implements queue.Queue. It returns after the stream has stored
// the message (the JetStream publish ack).
func (q *Queue) Publish(ctx context.Context, m queue.Message) error {
	if q.closed.Load() {
		return fmt.Errorf("natsq: publish: %w", queue.ErrClosed)
	}
	data, err := queue.EncodeMessage(m)
	if err != nil {
		return fmt.Errorf("natsq: publish: %w", err)
	}
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithExpectStream(q.cfg.Stream)); err != nil {
		return fmt.Errorf("natsq: publish: %w", q.mapErr(err))
	}
	return nil
}

// Consume implements queue.Queue. Heartbeats default to a third of
// AckWait.
func (q *Queue) Consume(ctx context.Context, h queue.Handler, opts queue.ConsumeOptions) error {
	if q.closed.Load() {
		return fmt.Errorf("natsq: consume: %w", queue.ErrClosed)
	}
	return queue.RunConsumer(ctx, source{q}, h, opts, q.cfg.AckWait/3, q.log)
}

// Stats implements queue.Queue from the consumer's state.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if q.closed.Load() {
		return queue.Stats{}, fmt.Errorf("natsq: stats: %w", queue.ErrClosed)
	}
	info, err := q.cons.Info(ctx)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("natsq: stats: %w", q.mapErr(err))
	}
	return queue.Stats{
		Pending:     int64(info.NumPending),
		InFlight:    int64(info.NumAckPending),
		Redelivered: int64(info.NumRedelivered),
	}, nil
}

// Ping implements queue.Queue: the connection is up and the consumer
// answers.
func (q *Queue) Ping(ctx context.Context) error {
	if q.closed.Load() {
		return fmt.Errorf("natsq: ping: %w", queue.ErrClosed)
	}
	if s := q.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("natsq: ping: connection %s", s)
	}
	if _, err := q.cons.Info(ctx); err != nil {
		return fmt.Errorf("natsq: ping: %w", q.mapErr(err))
	}
	return nil
}

// Close implements queue.Queue: it closes the connection and shuts the
// embedded server down (its files stay). It is safe to call twice.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	close(q.done)
	if q.nc != nil {
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
	return nil
}

// mapErr makes errors of a closed queue wrap queue.ErrClosed.
func (q *Queue) mapErr(err error) error {
	if q.closed.Load() {
		return fmt.Errorf("%w: %w", queue.ErrClosed, err)
	}
	return mapClosed(err)
}

// mapClosed makes the errors of a closed connection wrap queue.ErrClosed.
func mapClosed(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %w", queue.ErrClosed, err)
	}
	return err
}

// source is the queue.Source of a Queue: fetch on demand from the durable
// pull consumer.
type source struct{ q *Queue }

func (s source) Fetch(ctx context.Context, n int, deliver func(queue.Delivery)) error {
	q := s.q
	if q.closed.Load() {
		return fmt.Errorf("natsq: fetch: %w", queue.ErrClosed)
	}
	p := puller{nc: q.nc, cons: q.cons, wait: q.cfg.FetchWait, done: q.done}
	err := p.pull(ctx, n, func(msg jetstream.Msg) {
		if d, ok := q.delivery(msg); ok {
			deliver(d)
		}
	})
	switch {
	case q.closed.Load():
		return fmt.Errorf("natsq: fetch: %w", queue.ErrClosed)
	case err == nil, err == ctx.Err():
		return err
	default:
		return fmt.Errorf("natsq: fetch: %w", q.mapErr(err))
	}
}

func (s source) Done() <-chan struct{} { return s.q.done }

// RawSource is a queue.Source of the messages of any JetStream pull
// consumer, for queue.RunRawConsumer: consumers of messages that are not
// jobs (the bucket intake's S3 events) fetch them the way the job queue
// does. A Nak without a delay redelivers at once.
type RawSource struct{ p puller }

var _ queue.Source[queue.RawDelivery] = (*RawSource)(nil)

// NewRawSource returns the source of cons's messages on nc; a pull waits
// up to DefaultFetchWait.
func NewRawSource(nc *nats.Conn, cons jetstream.Consumer) *RawSource {
	return &RawSource{puller{nc: nc, cons: cons, wait: DefaultFetchWait}}
}

// Fetch implements queue.Source.
func (s *RawSource) Fetch(ctx context.Context, n int, deliver func(queue.RawDelivery)) error {
	err := s.p.pull(ctx, n, func(msg jetstream.Msg) { deliver(newRawDelivery(msg, mapClosed)) })
	if err == nil || err == ctx.Err() {
		return err
	}
	return fmt.Errorf("natsq: fetch: %w", mapClosed(err))
}

// Done implements queue.Source: a RawSource ends with its connection,
// which Fetch reports.
func (s *RawSource) Done() <-chan struct{} { return nil }

// puller takes messages off a JetStream pull consumer, one pull request
// at a time.
type puller struct {
	nc   *nats.Conn
	cons jetstream.Consumer
	// wait is how long one pull request waits for messages.
	wait time.Duration
	// done, when closed, ends a running pull (the queue is closing);
	// nil for never.
	done <-chan struct{}
}

// pull asks for up to n messages and calls deliver with each as it
// arrives. It returns nil when the pull expired, ctx's error (as it is)
// once ctx is done, and the client's error otherwise.
func (p puller) pull(ctx context.Context, n int, deliver func(jetstream.Msg)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The pull request expires on the server a little before fctx (the
	// client library keeps a margin), so the server never delivers into
	// a request the client has stopped reading.
	fctx, cancel := context.WithTimeout(ctx, p.wait)
	defer cancel()
	if p.done != nil {
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-fctx.Done():
			}
		}()
	}
	batch, err := p.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return err
	}
	subs := p.nc.NumSubscriptions() // the pull's inbox among them
	for msg := range batch.Messages() {
		deliver(msg)
	}
	err = batch.Error()
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// A pull that expired with nothing (or less than n) to deliver.
		return nil
	case ctx.Err() != nil:
		// Stopped mid-pull: the library has unsubscribed the pull's
		// inbox, but only in the connection's write buffer. Until the
		// server reads that, it may deliver a new message into the dead
		// pull, where it would sit until its ack deadline. A round trip
		// makes sure it has read it before Consume returns. The library
		// unsubscribes just after it ends the batch, in its own
		// goroutine: wait (briefly) for that first, or the flush may go
		// out before the unsubscribe is written.
		for deadline := time.Now().Add(200 * time.Millisecond); p.nc.NumSubscriptions() >= subs && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		p.nc.FlushTimeout(time.Second)
		return ctx.Err()
	default:
		return err
	}
}

// delivery decodes msg, or terminates it when it is not a job message
// (redelivering it could only fail again).
func (q *Queue) delivery(msg jetstream.Msg) (queue.Delivery, bool) {
	meta, err := msg.Metadata()
	if err == nil {
		var m queue.Message
		m, err = queue.DecodeMessage(msg.Data())
		if err == nil {
			m = m.WithAttempt(int(meta.NumDelivered), q.maxDeliver)
			return &delivery{rawDelivery: newRawDelivery(msg, q.mapErr), q: q, m: m}, true
		}
	}
	attrs := []any{"err", err, "subject", msg.Subject(), "size", len(msg.Data())}
	if meta != nil {
		attrs = append(attrs, "stream_seq", meta.Sequence.Stream, "attempt", meta.NumDelivered)
	}
	if terr := msg.Term(); terr != nil {
		q.log.Error("malformed message, terminate failed", append(attrs, "term_err", terr)...)
	} else {
		q.log.Error("malformed message terminated", attrs...)
	}
	return nil, false
}

// delivery is one JetStream job message as a queue.Delivery: the raw
// delivery, its decoded message, and the queue's backoff for a Nak
// without a delay.
type delivery struct {
	*rawDelivery
	q *Queue
	m queue.Message
}

func (d *delivery) Message() queue.Message { return d.m }

func (d *delivery) Nak(ctx context.Context, delay time.Duration) error {
	if delay <= 0 {
		delay = d.q.cfg.Delay(d.m.Attempt)
	}
	return d.rawDelivery.Nak(ctx, delay)
}

// rawDelivery is one JetStream message as a queue.RawDelivery.
type rawDelivery struct {
	msg         jetstream.Msg
	redelivered bool
	// mapErr marks the errors of a closed queue or connection.
	mapErr func(error) error
}

func newRawDelivery(msg jetstream.Msg, mapErr func(error) error) *rawDelivery {
	md, err := msg.Metadata()
	return &rawDelivery{msg: msg, redelivered: err == nil && md.NumDelivered > 1, mapErr: mapErr}
}

func (d *rawDelivery) Body() []byte      { return d.msg.Data() }
func (d *rawDelivery) Redelivered() bool { return d.redelivered }

// Ack waits for the server's confirmation (a double ack), so that "ack
// returned nil" means the message will not come again.
func (d *rawDelivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("natsq: ack: %w", d.mapErr(err))
	}
	return nil
}

// Nak, Term and InProgress are fire-and-forget in the JetStream protocol:
// the server sends no confirmation to wait for. Should one be lost, the
// ack deadline still redelivers.

func (d *rawDelivery) Nak(ctx context.Context, delay time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsq: nak: %w", err)
	}
	var err error
	if delay > 0 {
		err = d.msg.NakWithDelay(delay)
	} else {
		err = d.msg.Nak()
	}
	if err != nil {
		return fmt.Errorf("natsq: nak: %w", d.mapErr(err))
	}
	return nil
}

// Term terminates the message. The reason is logged by the consume loop
// (queue.RunConsumer, queue.RunRawConsumer), not sent: servers before
// 2.10.4 ignore a Term that carries a reason, and Debian ships 2.9.
func (d *rawDelivery) Term(ctx context.Context, _ string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsq: term: %w", err)
	}
	if err := d.msg.Term(); err != nil {
		return fmt.Errorf("natsq: term: %w", d.mapErr(err))
	}
	return nil
}

func (d *rawDelivery) InProgress(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsq: in progress: %w", err)
	}
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("natsq: in progress: %w", d.mapErr(err))
	}
	return nil
}

// serverLogger sends the embedded server's log to slog. Its notices
// (a dozen banner lines per start) go to debug; its Fatalf must not exit
// the process, as the server's own logger would.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l serverLogger) Tracef(string, ...any)           {}

func (l serverLogger) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, "nats server", "text", fmt.Sprintf(format, v...))
	}
}
