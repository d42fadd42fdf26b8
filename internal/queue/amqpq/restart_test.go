package amqpq

import (
	"context"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/testenv"
)

// TestReconnectAfterBrokerRestart restarts a private RabbitMQ node under
// a running consumer and a waiting publisher: what was published before
// is still there, the publisher's message goes through once the broker is
// back, and the consumer resumes by itself.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts RabbitMQ twice (12-24 s each)")
	}
	t.Parallel()
	r := testenv.StartRabbitMQ(t)
	url := r.URL()

	// kept has no consumer: its message must survive the restart.
	kept := openQueue(t, testConfig(url))
	q := openQueue(t, testConfig(url))
	ctx := context.Background()
	if err := kept.Publish(ctx, queue.Message{JobID: "job-kept"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan queue.Message, 10)
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		got <- d.Message()
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack: %v", err)
		}
	}, queue.ConsumeOptions{Concurrency: 2})
	receive := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m.JobID != want {
				t.Fatalf("got %+v, want %s", m, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %s", want)
		}
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-before"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	receive("job-before")

	r.Stop()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := q.Ping(pctx); err == nil {
		t.Error("Ping with the broker down: got nil, want an error")
	}
	cancel()
	// A publish while the broker is down waits for it.
	published := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		published <- q.Publish(pctx, queue.Message{JobID: "job-during"})
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-published:
		t.Fatalf("Publish returned %v with the broker down, want it to wait", err)
	default:
	}
	r.Start()

	if err := <-published; err != nil {
		t.Fatalf("Publish across the restart: %v", err)
	}
	receive("job-during")
	if err := q.Ping(ctx); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	wantDepth(t, kept, 1, 0)
	keptGot := make(chan queue.Message, 1)
	consume(t, kept, func(ctx context.Context, d queue.Delivery) {
		keptGot <- d.Message()
		_ = d.Ack(ctx)
	}, queue.ConsumeOptions{})
	select {
	case m := <-keptGot:
		if m.JobID != "job-kept" || m.Attempt != 1 {
			t.Errorf("got %+v, want job-kept attempt 1", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the message published before the restart did not come")
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-after"}); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	receive("job-after")
}
