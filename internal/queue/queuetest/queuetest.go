// Package queuetest is the conformance suite every queue.Queue driver
// passes: Run calls the same tests against a driver's queues, the way
// river's riverdrivertest does for its drivers. It is imported only by
// tests.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/queue"
)

// The configuration a driver's queues must have under Run. Short values
// keep the suite fast; the tests derive their waits from them.
const (
	// AckWait is the ack deadline.
	AckWait = time.Second
	// MaxDeliver is the number of scan attempts per message; a message
	// whose final attempt is never settled gets
	// queue.AbandonedDeliveries more deliveries.
	MaxDeliver = 3
	// Backoff is the delay of a Nak without a delay, at every attempt.
	Backoff = 50 * time.Millisecond
)

// Redelivery is the driver setting the suite expects: AckWait,
// MaxDeliver and one Backoff step.
func Redelivery() queue.Redelivery {
	return queue.Redelivery{AckWait: AckWait, MaxDeliver: MaxDeliver, Backoff: []time.Duration{Backoff}}
}

// quiet is how long a test waits to be sure that something does not
// happen: past one ack deadline and a half, a redelivery would have come.
const quiet = AckWait * 3 / 2

// timeout bounds waits for things that must happen.
const timeout = 15 * time.Second

// Run runs the conformance suite. newQueue returns a new, empty queue,
// configured with AckWait, MaxDeliver and Backoff, that no other test
// uses, and closes it at the test's cleanup. Subtests run in parallel.
func Run(t *testing.T, newQueue func(t *testing.T) queue.Queue) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, q queue.Queue)
	}{
		{"PublishConsumeAck", testPublishConsumeAck},
		{"ExactlyOnceWithConcurrentConsumers", testExactlyOnce},
		{"DeadWorkerRedeliveredAfterAckWait", testDeadWorker},
		{"HardStopRedeliversToAnotherConsumer", testHardStop},
		{"SoftStopWaitsForHandlers", testSoftStop},
		{"StopWhenIdle", testStopWhenIdle},
		{"StoppedConsumerTakesNothing", testStoppedConsumer},
		{"NakRedelivers", testNak},
		{"MaxDeliveriesFinal", testMaxDeliveries},
		{"FinalLeftUnsettledIsTerminated", testFinalUnsettled},
		{"DiedOnFinalDeliveredAbandoned", testAbandoned},
		{"AbandonedRedeliveredUntilLast", testAbandonedRedelivered},
		{"UnsettledRedelivered", testUnsettled},
		{"PanicRedelivered", testPanic},
		{"HandlerTimeout", testHandlerTimeout},
		{"InProgressKeepsMessage", testInProgress},
		{"HeartbeatKeepsSlowMessage", testHeartbeat},
		{"TermNotRedelivered", testTerm},
		{"SettleOnce", testSettleOnce},
		{"StatsDepth", testStatsDepth},
		{"PublishInvalid", testPublishInvalid},
		{"Ping", testPing},
		{"Closed", testClosed},
		{"CloseStopsConsume", testCloseStopsConsume},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newQueue(t))
		})
	}
}

// consumer is one running Consume call.
type consumer struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startConsume runs q.Consume until stop (or the test's cleanup).
func startConsume(t *testing.T, q queue.Queue, h queue.Handler, opts queue.ConsumeOptions) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- q.Consume(ctx, h, opts) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels Consume and returns its error once it has returned.
func (c *consumer) stop(t *testing.T) error {
	t.Helper()
	c.once.Do(func() {
		c.cancel()
		select {
		case c.err = <-c.done:
		case <-time.After(timeout):
			c.err = errors.New("consume did not return after its context was cancelled")
			t.Error(c.err)
		}
	})
	return c.err
}

func publish(t *testing.T, q queue.Queue, ids ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, id := range ids {
		if err := q.Publish(ctx, queue.Message{JobID: id}); err != nil {
			t.Fatalf("Publish(%s): %v", id, err)
		}
	}
}

// receive waits for the next message on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// none checks that nothing arrives on ch for the quiet period.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("got %s %+v, want none", what, m)
	case <-time.After(quiet):
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still %s after %s", what, last, timeout)
}

// depth waits until Stats reports pending and in-flight counts.
func depth(t *testing.T, q queue.Queue, pending, inFlight int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("Stats pending %d in-flight %d", pending, inFlight), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := q.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		return s.Pending == pending && s.InFlight == inFlight && s.Depth() == pending+inFlight,
			fmt.Sprintf("%+v", s)
	})
}

// ack acknowledges d, reporting a failure.
func ack(t *testing.T, ctx context.Context, d queue.Delivery) {
	if err := d.Ack(ctx); err != nil {
		t.Errorf("Ack(%s attempt %d): %v", d.Message().JobID, d.Message().Attempt, err)
	}
}

// wantMessage checks a scan attempt: not abandoned.
func wantMessage(t *testing.T, got queue.Message, id string, attempt int, final bool) {
	t.Helper()
	wantDelivery(t, got, queue.Message{JobID: id, Attempt: attempt, Final: final})
}

func wantDelivery(t *testing.T, got, want queue.Message) {
	t.Helper()
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func testPublishConsumeAck(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	depth(t, q, 1, 0)
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		ack(t, ctx, d)
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the message"), "job-1", 1, false)
	none(t, ch, "a redelivery of an acked message")
	depth(t, q, 0, 0)
}

func testExactlyOnce(t *testing.T, q queue.Queue) {
	const n, publishers, consumers = 300, 6, 3
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < n; i += publishers {
				if err := q.Publish(context.Background(), queue.Message{JobID: fmt.Sprintf("job-%03d", i)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var total atomic.Int64
	h := func(ctx context.Context, d queue.Delivery) {
		m := d.Message()
		if m.Attempt != 1 {
			t.Errorf("job %s: attempt %d, want 1 (nothing fails here)", m.JobID, m.Attempt)
		}
		mu.Lock()
		seen[m.JobID]++
		mu.Unlock()
		ack(t, ctx, d)
		total.Add(1)
	}
	const concurrency = 4
	// running counts each consumer's handlers, which must never exceed
	// its Concurrency.
	var running [consumers]atomic.Int64
	handler := func(c int) queue.Handler {
		return func(ctx context.Context, d queue.Delivery) {
			if n := running[c].Add(1); n > concurrency {
				t.Errorf("consumer %d runs %d handlers, want at most %d", c, n, concurrency)
			}
			defer running[c].Add(-1)
			time.Sleep(time.Millisecond) // let handlers overlap
			h(ctx, d)
		}
	}
	for c := range consumers {
		startConsume(t, q, handler(c), queue.ConsumeOptions{Concurrency: concurrency})
	}
	wg.Wait()
	eventually(t, "all messages handled", func() (bool, string) {
		got := total.Load()
		return got >= n, fmt.Sprintf("%d of %d", got, n)
	})
	time.Sleep(quiet)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("got %d distinct jobs, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %s handled %d times, want 1", id, c)
		}
	}
	depth(t, q, 0, 0)
}

// testDeadWorker: a worker that stops answering (hung, or killed: to the
// broker they look the same) loses its message to another worker after
// the ack deadline.
func testDeadWorker(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	type got struct {
		m    queue.Message
		by   string
		when time.Time
	}
	ch := make(chan got, 10)
	release := make(chan struct{})
	handler := func(name string) queue.Handler {
		return func(ctx context.Context, d queue.Delivery) {
			ch <- got{d.Message(), name, time.Now()}
			if d.Message().Attempt == 1 {
				// Dead: neither settles nor heartbeats until the
				// test is over.
				select {
				case <-release:
				case <-ctx.Done():
				}
				return
			}
			ack(t, ctx, d)
		}
	}
	opts := queue.ConsumeOptions{Concurrency: 1, Heartbeat: -1}
	startConsume(t, q, handler("a"), opts)
	startConsume(t, q, handler("b"), opts)

	first := receive(t, ch, "the first delivery")
	wantMessage(t, first.m, "job-1", 1, false)
	second := receive(t, ch, "the redelivery")
	wantMessage(t, second.m, "job-1", 2, false)
	if second.by == first.by {
		t.Errorf("redelivered to consumer %s, whose only handler is still busy", second.by)
	}
	// Not before the deadline (with some slack for clocks and timers).
	if wait := second.when.Sub(first.when); wait < AckWait*8/10 {
		t.Errorf("redelivered after %s, want about AckWait (%s)", wait, AckWait)
	}
	depth(t, q, 0, 0)
	close(release) // the "dead" handler comes back; its late Nak must not revive the message
	none(t, ch, "a delivery after the redelivery was acked")
}

// testHardStop: a handler still running when SoftStop expires gets its
// context cancelled; its unsettled message goes to another consumer.
func testHardStop(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	started := make(chan struct{})
	var cancelled atomic.Bool
	a := startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		close(started)
		<-ctx.Done()
		cancelled.Store(true)
	}, queue.ConsumeOptions{SoftStop: 100 * time.Millisecond})
	select {
	case <-started:
	case <-time.After(timeout):
		t.Fatal("timed out waiting for the first delivery")
	}
	if err := a.stop(t); err != nil {
		t.Fatalf("Consume returned %v, want nil", err)
	}
	if !cancelled.Load() {
		t.Fatal("Consume returned before its handler did")
	}
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		ack(t, ctx, d)
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the redelivery"), "job-1", 2, false)
	depth(t, q, 0, 0)
}

// testSoftStop: cancelling Consume lets a running handler finish and
// settle, and fetches nothing more.
func testSoftStop(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1", "job-2")
	started := make(chan struct{}, 2)
	var acked, handlerCtxDone atomic.Int64
	c := startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		started <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		if ctx.Err() != nil {
			handlerCtxDone.Add(1)
		}
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack during soft stop: %v", err)
			return
		}
		acked.Add(1)
	}, queue.ConsumeOptions{Concurrency: 1})
	select {
	case <-started:
	case <-time.After(timeout):
		t.Fatal("timed out waiting for the first delivery")
	}
	if err := c.stop(t); err != nil {
		t.Fatalf("Consume returned %v, want nil", err)
	}
	if got := acked.Load(); got != 1 {
		t.Errorf("got %d acks when Consume returned, want 1 (the running handler finishes, nothing new starts)", got)
	}
	if handlerCtxDone.Load() != 0 {
		t.Error("handler context cancelled within the soft stop")
	}
	depth(t, q, 1, 0)
}

func testStopWhenIdle(t *testing.T, q queue.Queue) {
	c := startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		t.Errorf("unexpected delivery %+v", d.Message())
	}, queue.ConsumeOptions{Concurrency: 3})
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := c.stop(t); err != nil {
		t.Fatalf("Consume returned %v, want nil", err)
	}
	// Stopping must not wait for a pending fetch to expire.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle Consume took %s to stop", d)
	}
}

func testNak(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if d.Message().Attempt == 1 {
			if err := d.Nak(ctx, 100*time.Millisecond); err != nil {
				t.Errorf("Nak: %v", err)
			}
			return
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the first delivery"), "job-1", 1, false)
	wantMessage(t, receive(t, ch, "the redelivery"), "job-1", 2, false)
	none(t, ch, "a delivery after the ack")
	depth(t, q, 0, 0)
}

// testMaxDeliveries: a message that keeps failing is delivered
// MaxDeliver times, the last with Final set, and then never again: no
// abandoned delivery, its final one having been settled.
func testMaxDeliveries(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		// The default backoff; on the final delivery Nak terminates.
		if err := d.Nak(ctx, 0); err != nil {
			t.Errorf("Nak: %v", err)
		}
	}, queue.ConsumeOptions{Concurrency: 2})
	for i := 1; i <= MaxDeliver; i++ {
		wantMessage(t, receive(t, ch, fmt.Sprintf("delivery %d", i)), "job-1", i, i == MaxDeliver)
	}
	none(t, ch, "a delivery after the final one")
	depth(t, q, 0, 0)
}

func testFinalUnsettled(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
	}, queue.ConsumeOptions{})
	for i := 1; i <= MaxDeliver; i++ {
		wantMessage(t, receive(t, ch, fmt.Sprintf("delivery %d", i)), "job-1", i, i == MaxDeliver)
	}
	none(t, ch, "a delivery after the final one")
	depth(t, q, 0, 0)
}

// testAbandoned: a message whose worker dies on every scan attempt, the
// final one included, is delivered once more, abandoned, so that its
// handler records the job's end; acknowledged, it never comes again. To
// the broker, a handler that neither settles nor heartbeats is a dead
// worker; each redelivery goes to a new consumer, the dead ones' only
// handlers being busy.
func testAbandoned(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	release := make(chan struct{})
	h := func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if !d.Message().Abandoned {
			// Dies: no settlement, no heartbeat.
			select {
			case <-release:
			case <-ctx.Done():
			}
			return
		}
		ack(t, ctx, d)
	}
	// A short soft stop: should the test fail, the dead handlers end with
	// their consumers.
	opts := queue.ConsumeOptions{Concurrency: 1, Heartbeat: -1, SoftStop: 100 * time.Millisecond}
	for range MaxDeliver + 1 {
		startConsume(t, q, h, opts)
	}
	for i := 1; i <= MaxDeliver; i++ {
		wantMessage(t, receive(t, ch, fmt.Sprintf("delivery %d", i)), "job-1", i, i == MaxDeliver)
	}
	wantDelivery(t, receive(t, ch, "the abandoned delivery"),
		queue.Message{JobID: "job-1", Attempt: MaxDeliver + 1, Abandoned: true})
	depth(t, q, 0, 0)
	close(release) // the dead handlers come back; their late settlements change nothing
	none(t, ch, "a delivery after the abandoned one was acked")
	depth(t, q, 0, 0)
}

// testAbandonedRedelivered: an abandoned delivery whose worker dies too,
// or whose handler returns without settling or Naks (recording the job's
// end failed), is delivered again, abandoned, up to
// queue.AbandonedDeliveries times; the last is Final as well, and a Nak
// terminates it.
func testAbandonedRedelivered(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	last := queue.MaxDeliveries(MaxDeliver)
	ch := make(chan queue.Message, 20)
	release := make(chan struct{})
	h := func(ctx context.Context, d queue.Delivery) {
		m := d.Message()
		ch <- m
		switch {
		case m.Attempt <= MaxDeliver+1:
			// Dies, on every scan attempt and on the first abandoned
			// delivery.
			select {
			case <-release:
			case <-ctx.Done():
			}
		case m.Attempt < last:
			// Returns without settling: Nak'ed by Consume.
		default:
			if err := d.Nak(ctx, 0); err != nil {
				t.Errorf("Nak: %v", err)
			}
		}
	}
	opts := queue.ConsumeOptions{Concurrency: 1, Heartbeat: -1, SoftStop: 100 * time.Millisecond}
	for range MaxDeliver + 2 {
		startConsume(t, q, h, opts)
	}
	for i := 1; i <= MaxDeliver; i++ {
		wantMessage(t, receive(t, ch, fmt.Sprintf("delivery %d", i)), "job-1", i, i == MaxDeliver)
	}
	for i := MaxDeliver + 1; i <= last; i++ {
		wantDelivery(t, receive(t, ch, fmt.Sprintf("abandoned delivery %d", i)),
			queue.Message{JobID: "job-1", Attempt: i, Abandoned: true, Final: i == last})
	}
	none(t, ch, "a delivery after the last abandoned one")
	depth(t, q, 0, 0)
	close(release)
	none(t, ch, "a delivery after the dead handlers came back")
}

// testUnsettled: a handler that returns without settling gets its
// message redelivered, without waiting for the ack deadline.
func testUnsettled(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if d.Message().Attempt > 1 {
			ack(t, ctx, d)
		}
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the first delivery"), "job-1", 1, false)
	wantMessage(t, receive(t, ch, "the redelivery"), "job-1", 2, false)
	none(t, ch, "a delivery after the ack")
}

func testPanic(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if d.Message().Attempt == 1 {
			panic("handler bug")
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the first delivery"), "job-1", 1, false)
	wantMessage(t, receive(t, ch, "the redelivery"), "job-1", 2, false)
	depth(t, q, 0, 0)
}

func testHandlerTimeout(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	errs := make(chan error, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if d.Message().Attempt == 1 {
			<-ctx.Done()
			errs <- ctx.Err()
			return
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{HandlerTimeout: 200 * time.Millisecond})
	wantMessage(t, receive(t, ch, "the first delivery"), "job-1", 1, false)
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler context ended with %v, want %v", err, context.DeadlineExceeded)
	}
	wantMessage(t, receive(t, ch, "the redelivery"), "job-1", 2, false)
}

// testInProgress: a handler that calls InProgress itself (heartbeats
// off) keeps its message for longer than the ack deadline.
func testInProgress(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		for range 10 { // 2.5 × AckWait in all
			time.Sleep(AckWait / 4)
			if err := d.InProgress(ctx); err != nil {
				t.Errorf("InProgress: %v", err)
			}
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{Concurrency: 2, Heartbeat: -1})
	wantMessage(t, receive(t, ch, "the delivery"), "job-1", 1, false)
	select {
	case m := <-ch:
		t.Fatalf("got %+v while its first delivery was in progress, want none", m)
	case <-time.After(AckWait*5/2 + quiet):
	}
	depth(t, q, 0, 0)
}

// testHeartbeat: Consume's own heartbeats keep a slow handler's message.
func testHeartbeat(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		select {
		case <-time.After(AckWait * 5 / 2):
		case <-ctx.Done():
			return
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{Concurrency: 2})
	wantMessage(t, receive(t, ch, "the delivery"), "job-1", 1, false)
	select {
	case m := <-ch:
		t.Fatalf("got %+v while its first delivery was running, want none", m)
	case <-time.After(AckWait*5/2 + quiet):
	}
	depth(t, q, 0, 0)
}

func testTerm(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		if err := d.Term(ctx, "test: not wanted"); err != nil {
			t.Errorf("Term: %v", err)
		}
	}, queue.ConsumeOptions{})
	wantMessage(t, receive(t, ch, "the delivery"), "job-1", 1, false)
	none(t, ch, "a delivery after Term")
	depth(t, q, 0, 0)
}

func testSettleOnce(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	errs := make(chan error, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		errs <- d.Ack(ctx)
		errs <- d.Ack(ctx)
		errs <- d.Nak(ctx, 0)
		errs <- d.Term(ctx, "late")
		errs <- d.InProgress(ctx)
	}, queue.ConsumeOptions{})
	for i, want := range []error{nil, queue.ErrSettled, queue.ErrSettled, queue.ErrSettled, queue.ErrSettled} {
		select {
		case err := <-errs:
			if !errors.Is(err, want) {
				t.Errorf("call %d: got %v, want %v", i, err, want)
			}
		case <-time.After(timeout):
			t.Fatal("timed out waiting for the handler")
		}
	}
	depth(t, q, 0, 0)
}

func testStatsDepth(t *testing.T, q queue.Queue) {
	depth(t, q, 0, 0)
	publish(t, q, "job-1", "job-2", "job-3", "job-4", "job-5")
	depth(t, q, 5, 0)
	release := make(chan struct{})
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		select {
		case <-release:
		case <-ctx.Done():
			return
		}
		ack(t, ctx, d)
	}, queue.ConsumeOptions{Concurrency: 2})
	depth(t, q, 3, 2)
	close(release)
	depth(t, q, 0, 0)
}

func testPublishInvalid(t *testing.T, q queue.Queue) {
	for _, id := range []string{"", "a b", "tab\there", string(make([]byte, 300))} {
		if err := q.Publish(context.Background(), queue.Message{JobID: id}); !errors.Is(err, queue.ErrMalformed) {
			t.Errorf("Publish(%q): got %v, want %v", id, err, queue.ErrMalformed)
		}
	}
	depth(t, q, 0, 0)
}

func testPing(t *testing.T, q queue.Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := q.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, q queue.Queue) {
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	if err := q.Publish(ctx, queue.Message{JobID: "job-1"}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want %v", err, queue.ErrClosed)
	}
	if err := q.Consume(ctx, func(context.Context, queue.Delivery) {}, queue.ConsumeOptions{}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Consume after Close: got %v, want %v", err, queue.ErrClosed)
	}
	if _, err := q.Stats(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Stats after Close: got %v, want %v", err, queue.ErrClosed)
	}
	if err := q.Ping(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Ping after Close: got %v, want %v", err, queue.ErrClosed)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testCloseStopsConsume: closing the queue under a running Consume makes
// it return ErrClosed, after cancelling its handlers.
func testCloseStopsConsume(t *testing.T, q queue.Queue) {
	publish(t, q, "job-1")
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- q.Consume(context.Background(), func(ctx context.Context, d queue.Delivery) {
			close(started)
			<-ctx.Done()
		}, queue.ConsumeOptions{})
	}()
	<-started
	q.Close()
	select {
	case err := <-done:
		if !errors.Is(err, queue.ErrClosed) {
			t.Errorf("Consume: got %v, want %v", err, queue.ErrClosed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return after Close")
	}
}

// testStoppedConsumer: a Consume that has stopped takes no message with
// it. A pull request left behind on the broker would swallow the next
// message until its ack deadline.
func testStoppedConsumer(t *testing.T, q queue.Queue) {
	for range 3 {
		c := startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
			t.Errorf("stopped consumer got %+v", d.Message())
		}, queue.ConsumeOptions{Concurrency: 2})
		time.Sleep(50 * time.Millisecond) // let it wait on the broker
		if err := c.stop(t); err != nil {
			t.Fatalf("Consume returned %v, want nil", err)
		}
	}
	publish(t, q, "job-1")
	ch := make(chan queue.Message, 10)
	startConsume(t, q, func(ctx context.Context, d queue.Delivery) {
		ch <- d.Message()
		ack(t, ctx, d)
	}, queue.ConsumeOptions{})
	select {
	case m := <-ch:
		wantMessage(t, m, "job-1", 1, false)
	case <-time.After(AckWait / 2):
		t.Fatal("the message did not come at once: a stopped consumer held it")
	}
}
