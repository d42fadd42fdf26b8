package amqpq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/queue/queuetest"
	"github.com/lazaret/lazaret/internal/redact"
	"github.com/lazaret/lazaret/internal/testenv"
)

// envAMQP names a RabbitMQ for the tests, e.g.
// amqp://lazaret:lazaret@127.0.0.1:5672/. (It belongs with testenv's
// other variables; it lives here until testenv has it.)
const envAMQP = "LAZARET_TEST_AMQP"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// brokerURL returns the test broker's URL, skipping the test without one
// (failing it under CI).
func brokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(envAMQP)
	if u == "" {
		testenv.Require(t, "RabbitMQ ($"+envAMQP+")")
	}
	return u
}

var names struct {
	sync.Mutex
	n int
}

var run = time.Now().UnixNano()

// testConfig is the configuration queuetest.Run asks for, on a queue no
// other test uses.
func testConfig(url string) Config {
	names.Lock()
	names.n++
	n := names.n
	names.Unlock()
	return Config{
		URL:        url,
		Queue:      fmt.Sprintf("lazaret.test.%d.%d", run, n),
		Redelivery: queuetest.Redelivery(),
	}
}

// testLog sends warnings and errors to the test log.
func testLog(t *testing.T) *slog.Logger { return testenv.Logger(t, slog.LevelWarn) }

// openQueue opens cfg's queue, closes it at cleanup and deletes the
// queues it used.
func openQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, testLog(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		q.Close()
		deleteQueues(t, cfg.URL, append([]string{q.cfg.Queue, q.cfg.DeadLetterQueue}, q.delayQueues()...)...)
	})
	return q
}

func deleteQueues(t *testing.T, url string, names ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("delete queues: %v", err)
		return
	}
	defer conn.Close()
	for _, n := range names {
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("delete queue %s: %v", n, err)
			return
		}
		if _, err := ch.QueueDelete(n, false, false, false); err != nil {
			t.Errorf("delete queue %s: %v", n, err)
		}
		ch.Close()
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	queuetest.Run(t, func(t *testing.T) queue.Queue {
		return openQueue(t, testConfig(url))
	})
}

// rawChannel opens a channel of its own on the test broker, for looking
// at queues behind the driver's back.
func rawChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// consume runs q.Consume with h until the test ends.
func consume(t *testing.T, q *Queue, h queue.Handler, opts queue.ConsumeOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, h, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Consume did not return")
		}
	})
}

// getDead waits for the next message in q's dead-letter queue.
func getDead(t *testing.T, ch *amqp.Channel, q *Queue) amqp.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, ok, err := ch.Get(q.cfg.DeadLetterQueue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", q.cfg.DeadLetterQueue, err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing in %s after 10s", q.cfg.DeadLetterQueue)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantDepth(t *testing.T, q *Queue, pending, inFlight int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := q.Stats(context.Background())
		if err == nil && s.Pending == pending && s.InFlight == inFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats: got %+v, %v; want pending %d in-flight %d", s, err, pending, inFlight)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTermDeadLetters: Term, and Nak on the final delivery, move the
// message to the dead-letter queue with the reason and the attempts.
func TestTermDeadLetters(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	q := openQueue(t, testConfig(url))
	ch := rawChannel(t, url)
	ctx := context.Background()
	for _, id := range []string{"job-term", "job-final"} {
		if err := q.Publish(ctx, queue.Message{JobID: id}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		if d.Message().JobID == "job-term" {
			if err := d.Term(ctx, "test: not wanted"); err != nil {
				t.Errorf("Term: %v", err)
			}
			return
		}
		if err := d.Nak(ctx, 0); err != nil {
			t.Errorf("Nak: %v", err)
		}
	}, queue.ConsumeOptions{Concurrency: 2})

	got := map[string]amqp.Delivery{}
	for range 2 {
		d := getDead(t, ch, q)
		m, err := queue.DecodeMessage(d.Body)
		if err != nil {
			t.Fatalf("dead letter %q: %v", d.Body, err)
		}
		got[m.JobID] = d
	}
	for _, tt := range []struct {
		id, reason string
		attempts   int
	}{
		{"job-term", "test: not wanted", 1},
		{"job-final", "nak on the final delivery", queuetest.MaxDeliver},
	} {
		d, ok := got[tt.id]
		if !ok {
			t.Errorf("%s not dead-lettered; got %v", tt.id, got)
			continue
		}
		if r, _ := d.Headers[hdrReason].(string); r != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.id, r, tt.reason)
		}
		if a := intHeader(d.Headers[hdrAttempts]); a != tt.attempts {
			t.Errorf("%s: attempts %d, want %d", tt.id, a, tt.attempts)
		}
		if qn, _ := d.Headers[hdrQueue].(string); qn != q.cfg.Queue {
			t.Errorf("%s: queue header %q, want %q", tt.id, qn, q.cfg.Queue)
		}
		if d.DeliveryMode != amqp.Persistent {
			t.Errorf("%s: delivery mode %d, want persistent", tt.id, d.DeliveryMode)
		}
	}
	wantDepth(t, q, 0, 0)
}

// TestMalformedDeadLettered: payloads that are not jobs go to the
// dead-letter queue, once each, and the good message behind them is
// handled.
func TestMalformedDeadLettered(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	q := openQueue(t, testConfig(url))
	ch := rawChannel(t, url)
	ctx := context.Background()
	bad := []string{"not json", `{"v":2,"job_id":"job-x"}`, `{"v":1,"job_id":""}`, `{"v":1}`}
	for _, body := range bad {
		if err := ch.PublishWithContext(ctx, "", q.cfg.Queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)}); err != nil {
			t.Fatalf("raw publish: %v", err)
		}
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-ok"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan queue.Message, 10)
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		got <- d.Message()
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack: %v", err)
		}
	}, queue.ConsumeOptions{})
	select {
	case m := <-got:
		if m.JobID != "job-ok" || m.Attempt != 1 {
			t.Fatalf("got %+v, want job-ok attempt 1", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the good message")
	}
	dead := map[string]bool{}
	for range bad {
		d := getDead(t, ch, q)
		if r, _ := d.Headers[hdrReason].(string); !strings.HasPrefix(r, "malformed: ") {
			t.Errorf("dead letter %q: reason %q, want malformed: ...", d.Body, r)
		}
		dead[string(d.Body)] = true
	}
	for _, body := range bad {
		if !dead[body] {
			t.Errorf("%q not dead-lettered", body)
		}
	}
	wantDepth(t, q, 0, 0)
	select {
	case m := <-got:
		t.Fatalf("got %+v, want nothing more", m)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestConsumerDeathRedelivers: a worker process that dies (its connection
// closes with a message unacknowledged) loses the message to another
// worker at once, with the attempt counted; after a death on the final
// attempt, the message comes again abandoned, so that its job's end is
// recorded; past the abandoned deliveries it is dead-lettered instead of
// delivered again.
func TestConsumerDeathRedelivers(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	cfg := testConfig(url)
	cfg.MaxDeliver = 2
	cfg.AckWait = time.Minute // only the closing connection may redeliver
	survivor := openQueue(t, cfg)
	ch := rawChannel(t, url)
	if err := survivor.Publish(context.Background(), queue.Message{JobID: "job-1"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// die opens a second "process", takes the next message and dies
	// holding it.
	die := func(want queue.Message) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		victim, err := Open(ctx, cfg, testLog(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got := make(chan queue.Message, 1)
		done := make(chan error, 1)
		go func() {
			done <- victim.Consume(context.Background(), func(ctx context.Context, d queue.Delivery) {
				got <- d.Message()
				<-ctx.Done()
			}, queue.ConsumeOptions{SoftStop: -1})
		}()
		select {
		case m := <-got:
			if m != want {
				t.Errorf("victim got %+v, want %+v", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("victim got nothing")
		}
		victim.Close() // the process dies: its connection closes
		if err := <-done; !errors.Is(err, queue.ErrClosed) {
			t.Errorf("victim's Consume: got %v, want %v", err, queue.ErrClosed)
		}
	}
	die(queue.Message{JobID: "job-1", Attempt: 1})
	start := time.Now()
	die(queue.Message{JobID: "job-1", Attempt: 2, Final: true})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("redelivery after the first death took %s, want it at once", d)
	}
	last := queue.MaxDeliveries(cfg.MaxDeliver)
	for a := cfg.MaxDeliver + 1; a <= last; a++ {
		die(queue.Message{JobID: "job-1", Attempt: a, Abandoned: true, Final: a == last})
	}
	// The survivor fetches the message once more, past the abandoned
	// deliveries: it dead-letters it instead of handing it to its
	// handler.
	got := make(chan queue.Message, 1)
	consume(t, survivor, func(ctx context.Context, d queue.Delivery) { got <- d.Message() }, queue.ConsumeOptions{})
	d := getDead(t, ch, survivor)
	if r, _ := d.Headers[hdrReason].(string); !strings.Contains(r, "stopped without settling") {
		t.Errorf("reason %q, want it to say the last consumer stopped", r)
	}
	if a := intHeader(d.Headers[hdrAttempts]); a != last {
		t.Errorf("attempts %d, want %d", a, last)
	}
	select {
	case m := <-got:
		t.Fatalf("got %+v after the last delivery, want none", m)
	case <-time.After(500 * time.Millisecond):
	}
	wantDepth(t, survivor, 0, 0)
}

// TestStopReleasesUnhandled: messages the broker pushed to a consumer
// that stops before a handler took them come back without an attempt
// counted.
func TestStopReleasesUnhandled(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	q := openQueue(t, testConfig(url))
	ctx := context.Background()
	for i := range 3 {
		if err := q.Publish(ctx, queue.Message{JobID: fmt.Sprintf("job-%d", i)}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	// A source that receives but never hands out: fetch nothing, stop.
	src := &source{q: q, prefetch: 3}
	if _, err := src.consumer(ctx); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	wantDepth(t, q, 0, 0) // all three pushed to us, none counted yet
	src.cancel()
	src.close()
	got := make(chan queue.Message, 10)
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		got <- d.Message()
		_ = d.Ack(ctx)
	}, queue.ConsumeOptions{Concurrency: 3})
	for range 3 {
		select {
		case m := <-got:
			if m.Attempt != 1 {
				t.Errorf("got %+v, want attempt 1 (a release is not a delivery)", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("released messages did not come back")
		}
	}
}

// TestExchange: with an exchange configured, Publish goes through it.
func TestExchange(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	cfg := testConfig(url)
	cfg.Exchange = cfg.Queue + ".x"
	cfg.ExchangeType = amqp.ExchangeTopic
	cfg.RoutingKey = "jobs.#"
	cfg.DeadLetterExchange = cfg.Queue + ".dlx"
	q := openQueue(t, cfg)
	ch := rawChannel(t, url)
	t.Cleanup(func() {
		ch.ExchangeDelete(cfg.Exchange, false, false)
		ch.ExchangeDelete(cfg.DeadLetterExchange, false, false)
	})
	if err := q.Publish(context.Background(), queue.Message{JobID: "job-1"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	wantDepth(t, q, 1, 0)
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		_ = d.Term(ctx, "through the exchange")
	}, queue.ConsumeOptions{})
	d := getDead(t, ch, q)
	if d.Exchange != cfg.DeadLetterExchange {
		t.Errorf("dead letter came through %q, want %q", d.Exchange, cfg.DeadLetterExchange)
	}
}

// TestPublishUnroutable: a publish the broker cannot route fails instead
// of vanishing behind a confirmation.
func TestPublishUnroutable(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	cfg := testConfig(url)
	cfg.Exchange = cfg.Queue + ".x"
	q := openQueue(t, cfg)
	ch := rawChannel(t, url)
	t.Cleanup(func() { ch.ExchangeDelete(cfg.Exchange, false, false) })
	if err := ch.QueueUnbind(q.cfg.Queue, q.cfg.RoutingKey, q.cfg.Exchange, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	err := q.Publish(context.Background(), queue.Message{JobID: "job-1"})
	if !errors.Is(err, errUnroutable) {
		t.Fatalf("Publish: got %v, want %v", err, errUnroutable)
	}
	// The channel survives a return: the next publish works.
	if err := ch.QueueBind(q.cfg.Queue, q.cfg.RoutingKey, q.cfg.Exchange, false, nil); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := q.Publish(context.Background(), queue.Message{JobID: "job-2"}); err != nil {
		t.Fatalf("Publish after rebinding: %v", err)
	}
}

// TestCredentialsRedacted: the password shows in no error, whether the
// broker refuses it or cannot be reached.
func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cret"
	urls := []string{"amqp://lazaret:" + secret + "@127.0.0.1:1/"}
	if u := os.Getenv(envAMQP); u != "" {
		if pu, err := amqp.ParseURI(u); err == nil {
			urls = append(urls, fmt.Sprintf("amqp://%s:%s@%s:%d/", pu.Username, secret, pu.Host, pu.Port))
		}
	}
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		q, err := Open(ctx, Config{URL: u}, nil)
		cancel()
		if err == nil {
			q.Close()
			t.Fatalf("Open(%s): got nil error", redact.URLs(u))
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
		t.Logf("Open: %v", err)
	}
	if got := redact.URLs("amqps://u:" + secret + "@h:5671/v"); strings.Contains(got, secret) {
		t.Errorf("redactURL: got %q", got)
	}
	err := redactErr(errors.New("dial amqp://u:"+secret+"@h: refused"), "amqp://u:"+secret+"@h/")
	if strings.Contains(err.Error(), secret) {
		t.Errorf("redactErr: got %q", err)
	}
}

func TestConfigErrors(t *testing.T) {
	const u = "amqp://u:p@127.0.0.1:5672/"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "url is required"},
		{"bad scheme", Config{URL: "http://127.0.0.1/"}, "url"},
		{"tls files without amqps", Config{URL: u, TLSCAFile: "ca.pem"}, "amqps://"},
		{"cert without key", Config{URL: "amqps://127.0.0.1/", TLSCertFile: "c.pem"}, "go together"},
		{"routing key without exchange", Config{URL: u, RoutingKey: "k"}, "need an exchange"},
		{"dead letter queue is the queue", Config{URL: u, Queue: "a", DeadLetterQueue: "a"}, "must differ"},
		{"negative ack wait", Config{URL: u, Redelivery: queue.Redelivery{AckWait: -time.Second}}, "ack_wait"},
		{"negative max deliver", Config{URL: u, Redelivery: queue.Redelivery{MaxDeliver: -1}}, "max_deliver"},
		{"short heartbeat", Config{URL: u, Heartbeat: time.Millisecond}, "heartbeat"},
		{"negative backoff", Config{URL: u, Redelivery: queue.Redelivery{Backoff: []time.Duration{-1}}}, "backoff"},
		{"missing ca file", Config{URL: "amqps://127.0.0.1/", TLSCAFile: "/nonexistent/ca.pem"}, "tls ca file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Open(context.Background(), tt.cfg, nil)
			if err == nil {
				q.Close()
				t.Fatalf("Open: got nil error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDelayMillis(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {time.Nanosecond, 1}, {50 * time.Millisecond, 50}, {99 * time.Millisecond, 99},
		{100 * time.Millisecond, 100}, {1234 * time.Millisecond, 1300}, {5 * time.Second, 5000},
		{30 * time.Second, 30000}, {10 * time.Minute, 600000}, {48 * time.Hour, 86400000},
	} {
		if got := delayMillis(tt.d); got != tt.want {
			t.Errorf("delayMillis(%s): got %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestAttemptOf(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    amqp.Delivery
		want int
	}{
		{"first", amqp.Delivery{}, 1},
		{"returned once", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrDeliveryCount: int64(1)}}, 2},
		{"redelivered, not counted", amqp.Delivery{Redelivered: true}, 2},
		{"copy after two", amqp.Delivery{Headers: amqp.Table{hdrAttempts: int64(2)}}, 3},
		{"copy, then returned", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrAttempts: int32(2), hdrDeliveryCount: int64(2)}}, 5},
		{"junk header", amqp.Delivery{Headers: amqp.Table{hdrAttempts: "x"}}, 1},
	} {
		if got := attemptOf(tt.d); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestNakDelay: a Nak's delay holds the message back about that long.
func TestNakDelay(t *testing.T) {
	t.Parallel()
	url := brokerURL(t)
	q := openQueue(t, testConfig(url))
	if err := q.Publish(context.Background(), queue.Message{JobID: "job-1"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	type got struct {
		m    queue.Message
		when time.Time
	}
	ch := make(chan got, 10)
	var naks atomic.Int64
	const delay = 700 * time.Millisecond
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- got{d.Message(), time.Now()}
		if d.Message().Attempt == 1 {
			naks.Add(1)
			if err := d.Nak(ctx, delay); err != nil {
				t.Errorf("Nak: %v", err)
			}
			return
		}
		_ = d.Ack(ctx)
	}, queue.ConsumeOptions{})
	first := <-ch
	wantDepth(t, q, 0, 1) // waiting in the delay queue counts as in flight
	var second got
	select {
	case second = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no redelivery")
	}
	if second.m.Attempt != 2 {
		t.Errorf("got %+v, want attempt 2", second.m)
	}
	if wait := second.when.Sub(first.when); wait < delay || wait > delay+2*time.Second {
		t.Errorf("redelivered after %s, want about %s", wait, delay)
	}
	wantDepth(t, q, 0, 0)
}
