package natsq

import (
	"context"
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

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/queue/queuetest"
	"github.com/lazaret/lazaret/internal/testenv"
)

// envNATS names an external NATS server with JetStream for the
// conformance suite, e.g. nats://127.0.0.1:4222. (It belongs with
// testenv's other variables; it lives here until testenv has it.)
const envNATS = "LAZARET_TEST_NATS"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is the configuration queuetest.Run asks for.
func testConfig() Config {
	return Config{Redelivery: queuetest.Redelivery()}
}

// testLog sends warnings and errors to the test log.
func testLog(t *testing.T) *slog.Logger { return testenv.Logger(t, slog.LevelWarn) }

func openQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, testLog(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func openEmbedded(t *testing.T, dir string) *Queue {
	t.Helper()
	cfg := testConfig()
	cfg.Embedded = &Embedded{StoreDir: dir}
	return openQueue(t, cfg)
}

func TestConformanceEmbedded(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Queue {
		return openEmbedded(t, t.TempDir())
	})
}

// TestConformanceExternal runs the suite against a real nats-server
// (LAZARET_TEST_NATS), each test on its own stream.
func TestConformanceExternal(t *testing.T) {
	url := os.Getenv(envNATS)
	if url == "" {
		testenv.Require(t, "NATS with JetStream ($"+envNATS+")")
	}
	var seq struct {
		sync.Mutex
		n int
	}
	run := time.Now().UnixNano()
	queuetest.Run(t, func(t *testing.T) queue.Queue {
		seq.Lock()
		seq.n++
		name := fmt.Sprintf("LZTEST_%d_%d", run, seq.n)
		seq.Unlock()
		cfg := testConfig()
		cfg.URL = url
		cfg.Stream = name
		cfg.Subject = "lazaret.test." + name
		cfg.Consumer = "workers"
		q := openQueue(t, cfg)
		t.Cleanup(func() { deleteStream(t, url, name) })
		return q
	})
}

func deleteStream(t *testing.T, url, name string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("delete stream %s: %v", name, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = js.DeleteStream(ctx, name)
	}
	if err != nil {
		t.Errorf("delete stream %s: %v", name, err)
	}
}

// TestDurableAcrossRestart: what was published survives closing the
// embedded server, and a restart on the same folder delivers it.
func TestDurableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := testConfig()
	cfg.Embedded = &Embedded{StoreDir: dir}

	q, err := Open(ctx, cfg, testLog(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := map[string]bool{"job-1": true, "job-2": true, "job-3": true}
	for id := range want {
		if err := q.Publish(ctx, queue.Message{JobID: id}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	q = openQueue(t, cfg)
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if s.Pending != 3 {
		t.Errorf("after restart: got %+v, want 3 pending", s)
	}
	got := make(chan string, 10)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- q.Consume(cctx, func(ctx context.Context, d queue.Delivery) {
			got <- d.Message().JobID
			if err := d.Ack(ctx); err != nil {
				t.Errorf("Ack: %v", err)
			}
		}, queue.ConsumeOptions{Concurrency: 3})
	}()
	for range want {
		select {
		case id := <-got:
			if !want[id] {
				t.Errorf("got job %q, want one of %v", id, want)
			}
			delete(want, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out; still missing %v", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Consume: %v", err)
	}
}

// TestMalformedTerminated: a message that is not a job is dropped (and
// logged), not redelivered until MaxDeliver, and the good one behind it
// is handled.
func TestMalformedTerminated(t *testing.T) {
	q := openEmbedded(t, t.TempDir())
	ctx := context.Background()
	for _, body := range []string{"not json", `{"v":2,"job_id":"job-x"}`, `{"v":1,"job_id":""}`, `{"v":1}`} {
		if _, err := q.js.Publish(ctx, q.cfg.Subject, []byte(body)); err != nil {
			t.Fatalf("raw publish: %v", err)
		}
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-ok"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan queue.Message, 10)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- q.Consume(cctx, func(ctx context.Context, d queue.Delivery) {
			got <- d.Message()
			if err := d.Ack(ctx); err != nil {
				t.Errorf("Ack: %v", err)
			}
		}, queue.ConsumeOptions{})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}()
	select {
	case m := <-got:
		if m.JobID != "job-ok" {
			t.Fatalf("got %+v, want job-ok", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the good message")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		si, err := q.js.Stream(ctx, q.cfg.Stream)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if s.Depth() == 0 && si.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %+v and %d messages in the stream, want none", s, si.CachedInfo().State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case m := <-got:
		t.Fatalf("got %+v, want nothing more", m)
	case <-time.After(queuetest.AckWait * 3 / 2):
	}
}

// TestFinalLeavesStream: messages settled by max deliveries (Nak on the
// final delivery is a Term) leave the work-queue stream instead of
// lingering as unacknowledged.
func TestFinalLeavesStream(t *testing.T) {
	q := openEmbedded(t, t.TempDir())
	ctx := context.Background()
	if err := q.Publish(ctx, queue.Message{JobID: "job-1"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	finals := make(chan queue.Message, 10)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- q.Consume(cctx, func(ctx context.Context, d queue.Delivery) {
			if d.Message().Final {
				finals <- d.Message()
			}
			_ = d.Nak(ctx, 0)
		}, queue.ConsumeOptions{})
	}()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-finals:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the final delivery")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		si, err := q.js.Stream(ctx, q.cfg.Stream)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if n := si.CachedInfo().State.Msgs; n == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("stream holds %d messages, want 0", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerGetsAbandonedDeliveries: Open sets the consumer's
// max_deliver to MaxDeliver plus the abandoned deliveries, and updates a
// consumer made by an older lazaret (max_deliver = MaxDeliver), on the
// embedded server and on an external one (LAZARET_TEST_NATS, if set).
func TestConsumerGetsAbandonedDeliveries(t *testing.T) {
	configs := map[string]func(t *testing.T) Config{
		"embedded": func(t *testing.T) Config {
			cfg := testConfig()
			cfg.Embedded = &Embedded{StoreDir: t.TempDir()}
			return cfg
		},
		"external": func(t *testing.T) Config {
			url := os.Getenv(envNATS)
			if url == "" {
				testenv.Require(t, "NATS with JetStream ($"+envNATS+")")
			}
			name := fmt.Sprintf("LZUPD_%d", time.Now().UnixNano())
			t.Cleanup(func() { deleteStream(t, url, name) })
			cfg := testConfig()
			cfg.URL, cfg.Stream, cfg.Subject, cfg.Consumer = url, name, "lazaret.test."+name, "workers"
			return cfg
		},
	}
	for name, config := range configs {
		t.Run(name, func(t *testing.T) {
			cfg := config(t)
			ctx := context.Background()
			want := queuetest.MaxDeliver + queue.AbandonedDeliveries
			q := openQueue(t, cfg)
			if got := q.cons.CachedInfo().Config.MaxDeliver; got != want || q.maxDeliver != queuetest.MaxDeliver {
				t.Errorf("new consumer: max_deliver %d, scan attempts %d; want %d, %d", got, q.maxDeliver, want, queuetest.MaxDeliver)
			}
			// What an older lazaret declared.
			old := q.cons.CachedInfo().Config
			old.MaxDeliver = queuetest.MaxDeliver
			if _, err := q.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, old); err != nil {
				t.Fatalf("older consumer: %v", err)
			}
			q.Close() // and a new version starts

			q = openQueue(t, cfg)
			info, err := q.cons.Info(ctx)
			if err != nil {
				t.Fatalf("consumer info: %v", err)
			}
			if got := info.Config.MaxDeliver; got != want || q.maxDeliver != queuetest.MaxDeliver {
				t.Errorf("updated consumer: max_deliver %d, scan attempts %d; want %d, %d", got, q.maxDeliver, want, queuetest.MaxDeliver)
			}
		})
	}
}

func TestScanAttempts(t *testing.T) {
	k := queue.AbandonedDeliveries
	for _, tt := range []struct{ server, configured, want int }{
		{5 + k, 5, 5},
		{3 + k, 5, 3}, // another process's setting wins
		{-1, 5, 5},    // no limit
		{k, 5, k},     // too few for abandoned deliveries
		{1, 5, 1},
	} {
		if got := scanAttempts(tt.server, tt.configured); got != tt.want {
			t.Errorf("scanAttempts(%d, %d): got %d, want %d", tt.server, tt.configured, got, tt.want)
		}
	}
}

func TestEmbeddedListen(t *testing.T) {
	q := openEmbedded(t, t.TempDir())
	if u := q.ClientURL(); u != "" {
		t.Errorf("ClientURL without a listener: got %q, want \"\"", u)
	}

	cfg := testConfig()
	cfg.Embedded = &Embedded{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}
	q = openQueue(t, cfg)
	u := q.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL: got %q, want nats://127.0.0.1:PORT", u)
	}
	// Another process (here: another connection) shares the queue.
	cfg2 := testConfig()
	cfg2.URL = u
	other := openQueue(t, cfg2)
	if err := other.Publish(context.Background(), queue.Message{JobID: "job-1"}); err != nil {
		t.Fatalf("Publish through the listener: %v", err)
	}
	// The consumer's pending count follows the stream a moment after
	// the publish is acknowledged (it failed once on a loaded machine).
	var st queue.Stats
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st, err = q.Stats(context.Background()); err == nil && st.Pending == 1 {
			return
		}
	}
	t.Errorf("Stats: got %+v, %v; want 1 pending", st, err)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"neither", Config{}, "exactly one of url and embedded"},
		{"both", Config{URL: "nats://127.0.0.1:4222", Embedded: &Embedded{StoreDir: dir}}, "exactly one"},
		{"no store dir", Config{Embedded: &Embedded{}}, "store_dir is required"},
		{"public listen", Config{Embedded: &Embedded{StoreDir: dir, Listen: "0.0.0.0:4222"}}, "only loopback"},
		{"host name listen", Config{Embedded: &Embedded{StoreDir: dir, Listen: "example.com:4222"}}, "only loopback"},
		{"bad listen", Config{Embedded: &Embedded{StoreDir: dir, Listen: "127.0.0.1"}}, "embedded.listen"},
		{"bad port", Config{Embedded: &Embedded{StoreDir: dir, Listen: "127.0.0.1:99999"}}, "bad port"},
		{"negative ack wait", Config{Embedded: &Embedded{StoreDir: dir}, Redelivery: queue.Redelivery{AckWait: -time.Second}}, "ack_wait"},
		{"negative max deliver", Config{Embedded: &Embedded{StoreDir: dir}, Redelivery: queue.Redelivery{MaxDeliver: -1}}, "max_deliver"},
		{"short fetch wait", Config{Embedded: &Embedded{StoreDir: dir}, FetchWait: time.Millisecond}, "fetch_wait"},
		{"negative backoff", Config{Embedded: &Embedded{StoreDir: dir}, Redelivery: queue.Redelivery{Backoff: []time.Duration{-1}}}, "backoff"},
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

// TestConnectRefused: the error names the server without its password,
// or its token (NATS takes one as the URL's user name).
func TestConnectRefused(t *testing.T) {
	for _, u := range []string{"nats://user:hunter2@127.0.0.1:1", "nats://hunter2@127.0.0.1:1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Open(ctx, Config{URL: u}, nil)
		cancel()
		if err == nil {
			t.Fatalf("Open(%s): got nil error, want a connection error", u)
		}
		if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("error shows the secret or hides the server: %v", err)
		}
	}
}

// TestOpenEmbeddedTime logs how long an embedded start takes on the
// defaults (lazaret serve must be ready in under 1 s): on an empty store
// folder, then again on the same folder (a restart). It measures, it does
// not assert; BenchmarkOpenEmbedded gives steadier numbers.
func TestOpenEmbeddedTime(t *testing.T) {
	dir := t.TempDir()
	for _, run := range []string{"first start", "restart"} {
		start := time.Now()
		q, err := Open(context.Background(), Config{Embedded: &Embedded{StoreDir: dir}}, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		opened := time.Since(start)
		q.Close()
		t.Logf("%s: Open (embedded, defaults) took %s; Close %s", run, opened, time.Since(start)-opened)
	}
}

// BenchmarkOpenEmbedded measures Open on the embedded defaults with an
// empty store folder.
func BenchmarkOpenEmbedded(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		q, err := Open(context.Background(), Config{Embedded: &Embedded{StoreDir: dir}}, nil)
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.StopTimer()
		q.Close()
		b.StartTimer()
	}
}

// BenchmarkPublish measures one durable publish on the embedded server.
func BenchmarkPublish(b *testing.B) {
	q, err := Open(context.Background(), Config{Embedded: &Embedded{StoreDir: b.TempDir()}}, nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	defer q.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := q.Publish(ctx, queue.Message{JobID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE"}); err != nil {
			b.Fatal(err)
		}
	}
}
