package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The job queue's consume loop is under test in the conformance suite
// (queuetest), against every driver. These tests run RunRawConsumer, the
// same loop, over an in-memory source.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeRaw is a RawDelivery that records how it was settled.
type fakeRaw struct {
	body        string
	redelivered bool

	mu      sync.Mutex
	settled chan struct{} // closed by the first settlement
	settles []string      // "ack", "nak 1s", "term": every call that reached the broker
	beats   int
}

func newFakeRaw(body string) *fakeRaw {
	return &fakeRaw{body: body, settled: make(chan struct{})}
}

func (d *fakeRaw) Body() []byte      { return []byte(d.body) }
func (d *fakeRaw) Redelivered() bool { return d.redelivered }

func (d *fakeRaw) settle(what string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.settles) == 0 {
		close(d.settled)
	}
	d.settles = append(d.settles, what)
	return nil
}

func (d *fakeRaw) Ack(context.Context) error { return d.settle("ack") }
func (d *fakeRaw) Nak(_ context.Context, delay time.Duration) error {
	return d.settle("nak " + delay.String())
}
func (d *fakeRaw) Term(context.Context, string) error { return d.settle("term") }
func (d *fakeRaw) InProgress(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.beats++
	return nil
}

func (d *fakeRaw) got() ([]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.settles...), d.beats
}

// fakeSource delivers what is sent on its channel, one a Fetch.
type fakeSource chan *fakeRaw

func (s fakeSource) Fetch(ctx context.Context, _ int, deliver func(RawDelivery)) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case d := <-s:
		deliver(d)
		return nil
	}
}

func (s fakeSource) Done() <-chan struct{} { return nil }

// consumeRaw runs RunRawConsumer over ds until each is settled, then stops
// it and waits for it to return.
func consumeRaw(t *testing.T, opts ConsumeOptions, h RawHandler, ds ...*fakeRaw) {
	t.Helper()
	src := make(fakeSource, len(ds))
	for _, d := range ds {
		src <- d
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunRawConsumer(ctx, src, h, opts, -1, slog.New(slog.DiscardHandler)) }()
	for _, d := range ds {
		select {
		case <-d.settled:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: never settled", d.body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRawConsumer: got %v, want nil", err)
	}
}

func TestRunRawConsumerSettles(t *testing.T) {
	tests := []struct {
		name string
		h    RawHandler
		want string // the settlements that reached the broker
	}{
		{"ack", func(ctx context.Context, d RawDelivery) { d.Ack(ctx) }, "[ack]"},
		{"nak with delay", func(ctx context.Context, d RawDelivery) { d.Nak(ctx, time.Second) }, "[nak 1s]"},
		{"term", func(ctx context.Context, d RawDelivery) { d.Term(ctx, "malformed") }, "[term]"},
		{"unsettled is nak'ed", func(context.Context, RawDelivery) {}, "[nak 0s]"},
		{"panic is nak'ed", func(context.Context, RawDelivery) { panic("boom") }, "[nak 0s]"},
		{"settled once", func(ctx context.Context, d RawDelivery) {
			d.Ack(ctx)
			if err := d.Term(ctx, "late"); !errors.Is(err, ErrSettled) {
				t.Errorf("Term after Ack: got %v, want %v", err, ErrSettled)
			}
		}, "[ack]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeRaw("event")
			consumeRaw(t, ConsumeOptions{}, tt.h, d)
			if got, _ := d.got(); fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestRunRawConsumerPassesBody(t *testing.T) {
	d := newFakeRaw("event body")
	d.redelivered = true
	consumeRaw(t, ConsumeOptions{}, func(ctx context.Context, got RawDelivery) {
		if string(got.Body()) != "event body" || !got.Redelivered() {
			t.Errorf("got body %q, redelivered %v; want %q, true", got.Body(), got.Redelivered(), "event body")
		}
		got.Ack(ctx)
	}, d)
}

func TestRunRawConsumerHeartbeats(t *testing.T) {
	d := newFakeRaw("slow")
	consumeRaw(t, ConsumeOptions{Heartbeat: 10 * time.Millisecond}, func(ctx context.Context, d RawDelivery) {
		time.Sleep(100 * time.Millisecond)
		d.Ack(ctx)
	}, d)
	if _, beats := d.got(); beats < 3 {
		t.Errorf("got %d heartbeats in 100ms, want at least 3 (one every 10ms)", beats)
	}
}

func TestRunRawConsumerConcurrency(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	release := make(chan struct{})
	h := func(ctx context.Context, d RawDelivery) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		d.Ack(ctx)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumeRaw(t, ConsumeOptions{Concurrency: 2}, h, newFakeRaw("a"), newFakeRaw("b"), newFakeRaw("c"), newFakeRaw("d"))
	}()
	// Two handlers start; a third would within the next 100ms.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		n := running
		mu.Unlock()
		if n == 2 {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	<-done
	if most != 2 {
		t.Errorf("got %d handlers at once, want 2", most)
	}
}

// TestRunRawConsumerStop: after ctx ends, a running handler may finish
// within SoftStop; one that does not has its context cancelled, and
// RunRawConsumer returns once it has returned.
func TestRunRawConsumerStop(t *testing.T) {
	tests := []struct {
		name       string
		work       time.Duration
		wantCancel bool
	}{
		{"finishes within soft stop", 20 * time.Millisecond, false},
		{"cancelled after soft stop", time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := make(fakeSource, 1)
			src <- newFakeRaw("event")
			started, cancelled := make(chan struct{}), make(chan bool, 1)
			h := func(ctx context.Context, d RawDelivery) {
				close(started)
				select {
				case <-time.After(tt.work):
					cancelled <- false
					d.Ack(ctx)
				case <-ctx.Done():
					cancelled <- true
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- RunRawConsumer(ctx, src, h, ConsumeOptions{SoftStop: 200 * time.Millisecond}, -1, slog.New(slog.DiscardHandler))
			}()
			<-started
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("RunRawConsumer: got %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("RunRawConsumer did not return after the soft stop")
			}
			if got := <-cancelled; got != tt.wantCancel {
				t.Errorf("handler's context cancelled: got %v, want %v", got, tt.wantCancel)
			}
		})
	}
}

func TestRunRawConsumerNilHandler(t *testing.T) {
	err := RunRawConsumer(context.Background(), make(fakeSource), nil, ConsumeOptions{}, -1, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Error("got nil, want an error")
	}
}
