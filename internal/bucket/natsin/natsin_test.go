package natsin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// counter counts the deliveries of each body. "bad" is malformed, the
// first delivery of "flaky" fails, "slow" takes two ack waits.
type counter struct {
	mu      sync.Mutex
	n       map[string]int
	handled map[string]bool
}

func (c *counter) HandleDelivery(_ context.Context, body []byte, _ bool) (bucket.Outcome, error) {
	c.mu.Lock()
	c.n[string(body)]++
	n := c.n[string(body)]
	c.mu.Unlock()
	switch string(body) {
	case "bad":
		return bucket.Outcome{}, fmt.Errorf("%w: not JSON", bucket.ErrMalformed)
	case "flaky":
		if n == 1 {
			return bucket.Outcome{}, errors.New("store down")
		}
	case "slow":
		time.Sleep(2 * ackWait)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handled[string(body)] = true
	return bucket.Outcome{Queued: 1}, nil
}

func (c *counter) counts() (handled int, deliveries string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.handled), fmt.Sprint(c.n)
}

const ackWait = time.Second

// TestConsume: each event is handled and acknowledged once, a malformed
// one is terminated, a failed one comes again, and a slow one is kept by
// heartbeats past the ack wait; the stream keeps none of them after; Run
// returns nil when stopped.
func TestConsume(t *testing.T) {
	url := testenv.NATS(t)
	subject := fmt.Sprintf("lz.natsin.%d.%d", os.Getpid(), time.Now().UnixNano())
	stream := strings.ReplaceAll(subject, ".", "_")
	cfg := Config{URL: url, Stream: stream, Subject: subject, Concurrency: 2, AckWait: ackWait}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &counter{n: map[string]int{}, handled: map[string]bool{}}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, c, testenv.Logger(t, slog.LevelWarn)) }()

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), stream)
	// Wait for Run to create the stream and its consumer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.Consumer(ctx, stream, "lazaret-events"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer never created")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, body := range []string{"one", "bad", "flaky", "slow", "two"} {
		if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for n, _ := c.counts(); n < 4 && time.Now().Before(deadline); n, _ = c.counts() {
		time.Sleep(50 * time.Millisecond)
	}
	// Past another ack wait, a lost ack or heartbeat would have redelivered.
	time.Sleep(3 * ackWait / 2)
	if _, got := c.counts(); got != "map[bad:1 flaky:2 one:1 slow:1 two:1]" {
		t.Errorf("deliveries: got %s, want bad:1 flaky:2 one:1 slow:1 two:1", got)
	}
	cons, err := js.Consumer(ctx, stream, "lazaret-events")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := cons.Info(ctx); err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer: %+v, %v; want nothing pending or unacknowledged", info, err)
	}
	// The stream Run made keeps only what is still to do: handled and
	// terminated events are gone, not kept for ever.
	if s, err := js.Stream(ctx, stream); err != nil {
		t.Error(err)
	} else if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("stream: %+v, %v; want no messages left", info.State, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
