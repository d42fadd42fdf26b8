package amqpin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/testenv"
)

// recorder is a handler that fails the first delivery of "flaky" with a
// transient error, treats "bad" as malformed, and records the rest.
type recorder struct {
	mu      sync.Mutex
	bodies  []string
	flakyed bool
}

func (r *recorder) HandleDelivery(_ context.Context, body []byte, _ bool) (bucket.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch string(body) {
	case "bad":
		return bucket.Outcome{}, fmt.Errorf("%w: not JSON", bucket.ErrMalformed)
	case "flaky":
		if !r.flakyed {
			r.flakyed = true
			return bucket.Outcome{}, errors.New("store down")
		}
	}
	r.bodies = append(r.bodies, string(body))
	return bucket.Outcome{Queued: 1}, nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func TestConsume(t *testing.T) {
	url := testenv.AMQP(t)
	name := fmt.Sprintf("lz-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	cfg := Config{URL: url, Queue: name, Exchange: name + ".x", RoutingKey: "bucket_notifications"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, rec, nil) }()

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	defer func() {
		ch.QueueDelete(name, false, false, false)
		ch.QueueDelete(name+DeadLetterSuffix, false, false, false)
		ch.ExchangeDelete(name+".x", false, false)
	}()
	// Wait for the consumer to declare and bind.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err == nil && q.Consumers == 1 {
			break
		}
		if err != nil {
			ch, _ = conn.Channel()
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, body := range []string{"one", "bad", "flaky", "two"} {
		err := ch.PublishWithContext(ctx, name+".x", "bucket_notifications", false, false,
			amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Persistent})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for len(rec.got()) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := fmt.Sprint(rec.got())
	if got != "[one two flaky]" && got != "[one flaky two]" {
		t.Errorf("handled %s, want one, two and flaky (after its retry)", got)
	}
	dead, err := ch.QueueDeclarePassive(name+DeadLetterSuffix, true, false, false, false, nil)
	if err != nil || dead.Messages != 1 {
		t.Errorf("dead-letter queue: %+v, %v; want the malformed message", dead, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestReconnectAfterBrokerRestart: the consumer survives a RabbitMQ
// restart — messages published after it (and before, still queued) are
// handled once it is back.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a private RabbitMQ node")
	}
	r := testenv.StartRabbitMQ(t)
	cfg := Config{URL: r.URL(), Queue: "lz-restart", Exchange: "lz-restart.x", RoutingKey: "k"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, rec, nil) }()
	publish := func(body string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			conn, err := amqp.Dial(r.URL())
			if err == nil {
				ch, _ := conn.Channel()
				err = ch.PublishWithContext(ctx, "lz-restart.x", "k", false, false, amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Persistent})
				conn.Close()
				if err == nil {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", body, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for len(rec.got()) < n && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if len(rec.got()) < n {
			t.Fatalf("handled %v, want %d messages", rec.got(), n)
		}
	}
	time.Sleep(500 * time.Millisecond) // the consumer declares and binds
	publish("before")
	waitFor(1)
	r.Stop()
	r.Start()
	publish("after")
	waitFor(2)
	if got := fmt.Sprint(rec.got()); got != "[before after]" {
		t.Errorf("handled %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
