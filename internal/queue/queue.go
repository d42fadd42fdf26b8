// Package queue is lazaret's durable job queue: the hop between the
// asynchronous intakes (POST /v1/jobs, S3 events, sweeps) and the workers
// that scan. An intake stores a job (status queued) and publishes its ID;
// any number of workers, in any number of processes, consume the IDs, run
// the pipeline, store the result and only then acknowledge.
//
// The contract every driver keeps (held by the conformance suite in
// queuetest):
//
//   - Publish returns only after the broker has persisted the message.
//   - A delivery that is not settled within the driver's ack deadline (the
//     worker died, hung, or lost its connection) is delivered again, to any
//     consumer, with Attempt incremented. Consume keeps the deadline of a
//     running handler alive with heartbeats (Delivery.InProgress), so a
//     long scan is not redelivered while its worker is alive.
//   - Nak asks for redelivery after a delay; Term drops the message.
//   - A message gets MaxDeliver scan attempts (driver configuration). The
//     last has Final set, so the handler can record the job as failed
//     instead of losing it. A final delivery that is Nak'ed, or left
//     unsettled, is terminated.
//   - A final delivery that is never settled at all (its worker process
//     died: killed, out of memory, a sample that crashes it every time)
//     is delivered again, with Abandoned set, up to AbandonedDeliveries
//     times: not to be run again, only to record the job's end. A Nak
//     redelivers an abandoned delivery, until the last, which has Final
//     set too. A message is never delivered more than
//     MaxDeliveries(MaxDeliver) times.
//   - A payload that cannot be decoded is terminated and logged, never
//     redelivered forever.
//
// Delivery is at least once: a job can be handled twice (a worker that was
// presumed dead finishes after all). Handlers make that harmless with the
// store's compare-and-set (store.Store.UpdateJob).
//
// Drivers: natsq (NATS JetStream, embedded or external) and amqpq
// (RabbitMQ). Each driver decodes payloads with DecodeMessage and runs its
// consume loop with RunConsumer, so the semantics above live in one place.
// Consumers of messages that are not jobs (the bucket intakes' S3 events)
// get the same loop — handler pool, soft and hard stop, heartbeats,
// settle-once — from RunRawConsumer.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors that callers branch on. Drivers wrap them.
var (
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue: closed")
	// ErrMalformed: a payload that cannot be decoded, or a message that
	// cannot be published (no job ID). Malformed deliveries are
	// terminated.
	ErrMalformed = errors.New("queue: malformed message")
	// ErrSettled: the delivery was already acknowledged, Nak'ed or
	// terminated; a delivery is settled once.
	ErrSettled = errors.New("queue: delivery already settled")
)

// Queue is a durable work queue of job IDs. Implementations are safe for
// concurrent use; several Consume calls (in one process or many) share the
// work, each message going to one of them at a time.
type Queue interface {
	// Publish stores m durably: it returns nil only after the broker has
	// persisted the message. Only m.JobID is sent; Attempt, Final and
	// Abandoned are set on delivery.
	Publish(ctx context.Context, m Message) error
	// Consume hands messages to h, at most opts.Concurrency at a time,
	// until ctx is cancelled. Then it stops fetching, lets running
	// handlers finish for up to opts.SoftStop, cancels their contexts and
	// waits for them to return. It returns nil after such a stop, or an
	// error (ErrClosed, a configuration error) if it could not go on.
	// Broker outages are logged and retried, not returned.
	Consume(ctx context.Context, h Handler, opts ConsumeOptions) error
	// Stats reports the queue depth, for metrics and readiness.
	Stats(ctx context.Context) (Stats, error)
	// Ping checks that the broker answers and the queue exists.
	Ping(ctx context.Context) error
	// Close releases the queue's connections (and stops an embedded
	// broker). Stop Consume calls first: a Consume still running when the
	// queue closes cancels its handlers at once (their settlements fail,
	// so their messages come back after the ack deadline) and returns
	// ErrClosed.
	Close() error
}

// Message is one queued job.
type Message struct {
	// JobID is the job to run (the store's ID).
	JobID string
	// Attempt is the 1-based delivery count: 1 on the first delivery, 2
	// on the first redelivery, and so on. Ignored by Publish.
	Attempt int
	// Final is set when a Nak, or a handler that returns without
	// settling, terminates the message instead of redelivering it: on
	// the last scan attempt (delivery MaxDeliver), where the handler must
	// record the job's failure itself (the job becomes done with verdict
	// error) rather than lose it, and on the last abandoned delivery.
	// Ignored by Publish.
	Final bool
	// Abandoned is set on a delivery after the last scan attempt
	// (Attempt > MaxDeliver), which the queue makes only when that final
	// delivery was never settled: its worker died, or hung past the ack
	// deadline. The handler must not run the job again (it may be what
	// kills the worker): it records the job as done with verdict error,
	// or finds it done already, and acknowledges. A Nak redelivers an
	// abandoned delivery, still abandoned, up to AbandonedDeliveries in
	// all. Ignored by Publish.
	Abandoned bool
}

// WithAttempt returns m as delivery number attempt (1-based) of a queue
// that allows maxDeliver scan attempts: Attempt, Final and Abandoned set
// as Message documents. Drivers call it on every delivery.
func (m Message) WithAttempt(attempt, maxDeliver int) Message {
	m.Attempt = attempt
	m.Abandoned = attempt > maxDeliver
	m.Final = attempt == maxDeliver || attempt >= MaxDeliveries(maxDeliver)
	return m
}

// Handler handles one delivery. It should settle the delivery (Ack, Nak
// or Term) before it returns; one that returns without settling (or
// panics) is Nak'ed with the default backoff, or terminated if it was
// final. A handler must return soon after its context is cancelled. An
// abandoned delivery (Message.Abandoned) is not a new attempt: the
// handler records the job's end without running it.
type Handler func(ctx context.Context, d Delivery)

// Delivery is one delivery of a job message to a handler. Its methods are
// safe to call from several goroutines; the first settlement (Ack, Nak or
// Term) wins and later ones return ErrSettled. Ack it after the job's
// result is stored. A Nak without a delay waits the queue's configured
// backoff for this attempt; on a final delivery Nak terminates the
// message instead.
type Delivery interface {
	// Message returns the message, with Attempt, Final and Abandoned.
	Message() Message
	Settler
}

// RawHandler handles one delivery of a message that is not a job. It
// settles the delivery as a Handler does; one it leaves unsettled (or that
// panics) is Nak'ed.
type RawHandler func(ctx context.Context, d RawDelivery)

// RawDelivery is one delivery of a message that is not a job (an S3 event
// notification) to a RawHandler, which decodes the body itself. It is
// settled once, like a Delivery, and is never final: the broker keeps
// redelivering what is not acknowledged or terminated.
type RawDelivery interface {
	// Body returns the message as it was published.
	Body() []byte
	// Redelivered reports whether the broker delivered the message
	// before without it being acknowledged (a crash, a lost connection,
	// a Nak).
	Redelivered() bool
	Settler
}

// Settler settles one delivery: what Delivery and RawDelivery share, and
// what the consume loop calls by itself (heartbeats, the settlement a
// handler left out).
type Settler interface {
	// Ack removes the message from the queue. It waits for the broker's
	// confirmation where the broker gives one: an error means the message
	// may come again.
	Ack(ctx context.Context) error
	// Nak asks for redelivery after delay; delay <= 0 means the
	// source's default.
	Nak(ctx context.Context, delay time.Duration) error
	// Term drops the message: it is never delivered again (a broker
	// with a dead-letter queue moves it there). The reason is logged (and
	// given to the broker where it keeps one).
	Term(ctx context.Context, reason string) error
	// InProgress pushes the ack deadline back, for handlers that run
	// longer than it. Consume does this by itself (see
	// ConsumeOptions.Heartbeat); it is a no-op on brokers that have no
	// ack deadline.
	InProgress(ctx context.Context) error
}

// ConsumeOptions tune one Consume call. The zero value is usable.
type ConsumeOptions struct {
	// Concurrency is how many handlers run at once; 0 means 1. Messages
	// are fetched only when a handler is free, so none waits in a local
	// buffer while its ack deadline runs.
	Concurrency int
	// SoftStop is how long running handlers may go on after Consume's
	// context is cancelled before their own contexts are cancelled; 0
	// means DefaultSoftStop, a negative value cancels them at once.
	SoftStop time.Duration
	// HandlerTimeout bounds each handler's context; 0 means no bound.
	// After it, heartbeats stop too, so a handler that ignores its
	// context loses its message to redelivery after the ack deadline.
	HandlerTimeout time.Duration
	// Heartbeat is how often Consume calls InProgress while a handler
	// runs; 0 means the driver's default (a third of its ack deadline),
	// a negative value disables heartbeats (the handler then calls
	// InProgress itself when it runs long).
	Heartbeat time.Duration
}

// Driver defaults, shared so that every broker behaves alike.
const (
	// DefaultAckWait: Consume heartbeats a running handler every third
	// of the ack wait, so it need not cover the longest scan; it is how
	// long a dead or hung worker's job waits before another takes it, and
	// rides out a reconnect or a GC pause (two missed heartbeats).
	DefaultAckWait = 30 * time.Second
	// DefaultMaxDeliver: one first attempt and four retries.
	DefaultMaxDeliver = 5
	// AbandonedDeliveries is how many deliveries a message gets after
	// its last scan attempt, if that one was never settled (see
	// Message.Abandoned): more than one, because a process that dies
	// takes the deliveries of all its running jobs with it, and because
	// recording the job's end may fail (the store down) and be retried.
	AbandonedDeliveries = 3
)

// MaxDeliveries is the most deliveries a driver makes of one message when
// it allows maxDeliver scan attempts: those and AbandonedDeliveries.
func MaxDeliveries(maxDeliver int) int { return maxDeliver + AbandonedDeliveries }

// DefaultBackoff is the redelivery delay after failed attempt i+1 (the
// last value repeats): retries spread over about 13 minutes, long enough
// for clamd to reload or restart.
var DefaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// Redelivery is how a driver redelivers what was not acknowledged, the
// same for every broker. Drivers embed it in their Config.
type Redelivery struct {
	// AckWait is how long a delivery may go without being settled or
	// InProgress before it is given to another consumer; 0 means
	// DefaultAckWait.
	AckWait time.Duration
	// MaxDeliver bounds scan attempts per message; 0 means
	// DefaultMaxDeliver. A message whose last attempt's worker died
	// gets AbandonedDeliveries more deliveries, to record its end.
	MaxDeliver int
	// Backoff[i] is the redelivery delay after a Nak without a delay of
	// attempt i+1 (the last value repeats); nil means DefaultBackoff.
	Backoff []time.Duration
}

// WithDefaults returns r with its zero fields set to the defaults.
func (r Redelivery) WithDefaults() Redelivery {
	if r.AckWait == 0 {
		r.AckWait = DefaultAckWait
	}
	if r.MaxDeliver == 0 {
		r.MaxDeliver = DefaultMaxDeliver
	}
	if r.Backoff == nil {
		r.Backoff = DefaultBackoff
	}
	return r
}

// Check names the first setting out of range; maxDelay, when positive,
// bounds each backoff value (a broker's own limit).
func (r Redelivery) Check(maxDelay time.Duration) error {
	switch {
	case r.AckWait < 0:
		return errors.New("ack_wait must be positive")
	case r.MaxDeliver < 1:
		return errors.New("max_deliver must be at least 1")
	}
	for _, d := range r.Backoff {
		if d < 0 || (maxDelay > 0 && d > maxDelay) {
			if maxDelay > 0 {
				return fmt.Errorf("backoff values must be between 0 and %s", maxDelay)
			}
			return errors.New("backoff values must not be negative")
		}
	}
	return nil
}

// Delay is the redelivery delay after failed attempt (1-based).
func (r Redelivery) Delay(attempt int) time.Duration {
	if len(r.Backoff) == 0 {
		return 0
	}
	return r.Backoff[min(max(attempt, 1), len(r.Backoff))-1]
}

// DefaultSoftStop is the default ConsumeOptions.SoftStop. It fits, with
// room for the hard stop and the rest of shutdown, inside Kubernetes'
// default 30 s termination grace period.
const DefaultSoftStop = 20 * time.Second

// Stats is a snapshot of a queue's depth.
type Stats struct {
	// Pending counts messages waiting for a first delivery.
	Pending int64
	// InFlight counts messages delivered and not yet settled (being
	// handled, or waiting for their redelivery).
	InFlight int64
	// Redelivered counts in-flight messages that were delivered more
	// than once, where the broker tells (else 0). The conformance suite
	// checks only Pending and InFlight.
	Redelivered int64
}

// Depth is the number of messages not yet done: Pending + InFlight.
func (s Stats) Depth() int64 { return s.Pending + s.InFlight }

// payloadVersion is the version of the wire format written by
// EncodeMessage. A reader refuses versions it does not know rather than
// guess.
const payloadVersion = 1

// maxJobIDLen bounds job IDs: lazaret's are 26-character ULIDs; anything
// much longer is not one of ours.
const maxJobIDLen = 256

// payload is the wire format (JSON, versioned). Unknown fields are
// ignored so that a v1 reader accepts additions made within v1.
type payload struct {
	V     int    `json:"v"`
	JobID string `json:"job_id"`
}

// EncodeMessage returns the wire form of m (only JobID travels).
func EncodeMessage(m Message) ([]byte, error) {
	if err := checkJobID(m.JobID); err != nil {
		return nil, err
	}
	return json.Marshal(payload{V: payloadVersion, JobID: m.JobID})
}

// DecodeMessage parses a payload written by EncodeMessage. Errors wrap
// ErrMalformed.
func DecodeMessage(b []byte) (Message, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.V != payloadVersion {
		return Message{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, p.V)
	}
	if err := checkJobID(p.JobID); err != nil {
		return Message{}, err
	}
	return Message{JobID: p.JobID}, nil
}

func checkJobID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty job ID", ErrMalformed)
	}
	if len(id) > maxJobIDLen {
		return fmt.Errorf("%w: job ID longer than %d bytes", ErrMalformed, maxJobIDLen)
	}
	// JSON carries only UTF-8: an invalid byte would arrive as U+FFFD,
	// naming another job.
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: job ID is not valid UTF-8", ErrMalformed)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: job ID has a space or control character", ErrMalformed)
		}
	}
	return nil
}
