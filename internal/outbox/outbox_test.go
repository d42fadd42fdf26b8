package outbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
)

// TestDispatch: against a real store and real receivers, a delivery that
// succeeds is marked delivered; one refused for good (400) is failed at
// once; one that keeps failing (503) is retried, then failed — and none
// is dropped.
func TestDispatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var okHits, badHits, downHits atomic.Int32
	srv := func(code int, hits *atomic.Int32) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(code)
		}))
		t.Cleanup(s.Close)
		return s
	}
	ok, bad, down := srv(200, &okHits), srv(400, &badHits), srv(503, &downHits)
	w, err := notify.NewWebhook(notify.WebhookConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, []Target{{Name: "ok", URL: ok.URL, D: w}, {Name: "bad", URL: bad.URL, D: w}, {Name: "down", URL: down.URL, D: w}},
		notify.Policy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}, nil)
	go d.Run(ctx)
	for _, target := range []string{"ok", "bad", "down"} {
		if err := d.Enqueue(ctx, target, "job1-"+target, notify.EventScanCompleted, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Enqueue(ctx, "nowhere", "x", "e", nil); err == nil {
		t.Error("an unknown target was accepted")
	}
	deadline := time.Now().Add(10 * time.Second)
	var counts map[string]int64
	for time.Now().Before(deadline) {
		counts, _ = st.CountDeliveries(ctx)
		if counts[store.DeliveryDelivered] == 1 && counts[store.DeliveryFailed] == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if counts[store.DeliveryDelivered] != 1 || counts[store.DeliveryFailed] != 2 || counts[store.DeliveryPending] != 0 {
		t.Fatalf("counts %v", counts)
	}
	if okHits.Load() != 1 || badHits.Load() != 1 || downHits.Load() != 3 {
		t.Errorf("hits ok=%d bad=%d down=%d, want 1, 1 (permanent), 3 (the policy's attempts)", okHits.Load(), badHits.Load(), downHits.Load())
	}
	failed, _ := st.ListDeliveries(ctx, store.DeliveryFailed, 10)
	for _, f := range failed {
		if f.LastError == "" {
			t.Errorf("%s failed without a recorded error", f.ID)
		}
	}
}

// cancelAfter is a real webhook whose dispatcher is stopped just after a
// delivery succeeded, as a shutdown can land.
type cancelAfter struct {
	w      *notify.Webhook
	cancel context.CancelFunc
}

func (c cancelAfter) Deliver(ctx context.Context, d notify.Delivery) error {
	err := c.w.Deliver(ctx, d)
	c.cancel()
	return err
}

// TestStopAfterDelivered: a delivery the receiver took just before the
// dispatcher stopped is recorded delivered, not sent again by the next
// dispatcher.
func TestStopAfterDelivered(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	w, err := notify.NewWebhook(notify.WebhookConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := notify.Policy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}

	ctx, cancel := context.WithCancel(t.Context())
	d := New(st, []Target{{Name: "hook", URL: srv.URL, D: cancelAfter{w, cancel}}}, policy, nil)
	if err := d.Enqueue(ctx, "hook", "job1-0-scan.completed", notify.EventScanCompleted, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	d.Run(ctx) // returns once the delivery cancelled it

	// The next process's dispatcher.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go New(st, []Target{{Name: "hook", URL: srv.URL, D: w}}, policy, nil).Run(ctx2)
	time.Sleep(300 * time.Millisecond)
	if n := hits.Load(); n != 1 {
		t.Errorf("receiver got the delivery %d times, want once", n)
	}
	counts, err := st.CountDeliveries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.DeliveryDelivered] != 1 || counts[store.DeliveryPending] != 0 {
		t.Errorf("deliveries %v, want one delivered", counts)
	}
}

// hungUpdates is the real store whose UpdateDelivery never answers, as a
// database that hangs.
type hungUpdates struct{ *sqlite.Store }

func (hungUpdates) UpdateDelivery(ctx context.Context, _ *store.Delivery) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestStopWithHungStore: recording an attempt outlives the dispatcher's
// cancellation, but not for ever: a store that does not answer cannot
// hold a shutdown.
func TestStopWithHungStore(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	w, err := notify.NewWebhook(notify.WebhookConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := notify.Policy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	d := New(hungUpdates{st}, []Target{{Name: "hook", URL: srv.URL, D: cancelAfter{w, cancel}}}, policy, nil)
	d.recordTimeout = 100 * time.Millisecond
	if err := d.Enqueue(ctx, "hook", "job1-0-scan.completed", notify.EventScanCompleted, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended, with the store hung")
	}
}
