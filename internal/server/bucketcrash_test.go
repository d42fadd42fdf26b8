package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/testenv"
)

// TestBucketKillMidRun: lazaret is killed with SIGKILL while objects
// stream in and their events are processed; after a restart every object
// ends with one job, its verdict tag (or deleted, when infected) and one
// notification per delivery ID. Through MinIO's webhook target, events
// become queued jobs; through RabbitMQ, they are scanned in place and the
// unacknowledged deliveries come again.
func TestBucketKillMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	t.Run("webhook", func(t *testing.T) {
		lport, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		mio := testenv.StartMinIO(t, map[string]string{
			"MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY":    "on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY":  fmt.Sprintf("http://127.0.0.1:%d/v1/events/s3", lport),
			"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_PRIMARY": t.TempDir(), // events wait while lazaret is down
		})
		killMidRun(t, mio, lport, "arn:minio:sqs::PRIMARY:webhook", "", func() {})
	})
	t.Run("amqp", func(t *testing.T) {
		amqpURL := testenv.AMQP(t)
		lport, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("lz-kill-%d-%d", os.Getpid(), time.Now().UnixNano())
		mio := testenv.StartMinIO(t, minioAMQPTarget(amqpURL, name))
		events := fmt.Sprintf("events: {amqp: {url: %q, queue: %s, exchange: %s, routing_key: bucket_notifications}}\n",
			amqpURL, name, name)
		killMidRun(t, mio, lport, "arn:minio:sqs::PRIMARY:amqp", events, func() { waitQueue(t, amqpURL, name) })
	})
	t.Run("nats", func(t *testing.T) {
		natsURL := testenv.NATS(t)
		lport, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		subject := fmt.Sprintf("lz.kill.%d.%d", os.Getpid(), time.Now().UnixNano())
		stream := strings.ReplaceAll(subject, ".", "_")
		mio := testenv.StartMinIO(t, minioNATSTarget(natsURL, subject))
		events := fmt.Sprintf("events: {nats: {url: %q, subject: %s, stream: %s, ack_wait: 3s}}\n", natsURL, subject, stream)
		killMidRun(t, mio, lport, "arn:minio:sqs::PRIMARY:nats", events, func() { waitStream(t, natsURL, stream) })
	})
}

// waitStream waits until lazaret's consumer has created its JetStream
// stream, so that MinIO's first events are kept.
func waitStream(t *testing.T, url, name string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := js.Stream(t.Context(), name); err == nil {
			return
		}
	}
	t.Fatalf("stream %s was never created", name)
}

// waitQueue waits until lazaret's consumer has declared its queue, so that
// MinIO's first events are not published to an exchange with no queue.
func waitQueue(t *testing.T, url, name string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
		ch.Close()
		if err == nil {
			return
		}
	}
	t.Fatalf("queue %s was never declared", name)
}

func killMidRun(t *testing.T, mio *testenv.MinIO, lport int, arn, events string, ready func()) {
	const n = 500
	rc := &receiver{secret: "hook-secret", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lazaret.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `listen: 127.0.0.1:%d
data_dir: %s
log: {level: error}
queue: {ack_wait: 2s}
engines: [{name: builtin, type: builtin}]
s3: {endpoint: %s, access_key: %s, secret_key: %s, path_style: true}
notify:
  webhooks: [{url: %s, secret: hook-secret, report_clean: true}]
%s`, lport, filepath.Join(dir, "data"), mio.Endpoint, mio.User, mio.Password, hook.URL, events), 0o644)
	base := fmt.Sprintf("http://127.0.0.1:%d", lport)
	child := startChild(t, cfgPath, base)
	ready()
	// The AMQP queue is declared by lazaret's consumer: start it before
	// MinIO publishes.
	mc := subscribedBucket(t, mio, "uploads", arn)

	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	put := func() {
		defer wg.Done()
		for {
			i := next.Add(1) - 1
			if i >= n {
				return
			}
			data := testenv.Deterministic(fmt.Sprint("obj", i), 2048)
			if i%10 == 0 {
				data = testenv.EICAR
			}
			if _, err := mc.PutObject(ctx, "uploads", fmt.Sprintf("o/%03d", i), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}
	for range 4 {
		wg.Add(1)
		go put()
	}
	for next.Load() < n/2 {
		time.Sleep(10 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	wg.Wait() // the rest arrive while lazaret is down: MinIO keeps their events
	startChild(t, cfgPath, base)

	deadline := time.Now().Add(180 * time.Second)
	for time.Now().Before(deadline) && len(rc.byKey()) < n {
		time.Sleep(250 * time.Millisecond)
	}
	got := rc.byKey()
	if len(got) != n {
		// Say where each missing one stands: no job, a job, a delivery.
		c := &client{t: t, base: base}
		jobs := map[string]scan.Job{}
		for _, j := range listAll(t, c) {
			jobs[j.Source.Key] = j
		}
		_, deliveries := c.do("GET", "/v1/deliveries?limit=1000", "", nil)
		for i := range n {
			key := fmt.Sprintf("o/%03d", i)
			if _, ok := got[key]; !ok {
				j, ok := jobs[key]
				t.Logf("%s: not notified; job found %v: %s %s %s attempts %d actions %v error %q",
					key, ok, j.ID, j.Status, j.Verdict, j.Attempts, j.Actions, j.Error)
				if ok && strings.Contains(string(deliveries), j.ID) {
					t.Logf("%s: its delivery is in the outbox", key)
				}
			}
		}
		t.Fatalf("notified %d objects, want %d (%d jobs)", len(got), n, len(jobs))
	}
	rc.mu.Lock()
	perKey := map[string]int{}
	for _, m := range rc.got {
		src, _ := m["source"].(map[string]any)
		perKey[src["key"].(string)]++
	}
	rc.mu.Unlock()
	for k, c := range perKey {
		if c != 1 {
			t.Errorf("%s: %d distinct deliveries, want 1", k, c)
		}
	}
	c := &client{t: t, base: base}
	jobs := listAll(t, c)
	if len(jobs) != n {
		t.Errorf("got %d jobs, want %d (one per object)", len(jobs), n)
	}
	for i := range n {
		key := fmt.Sprintf("o/%03d", i)
		if i%10 == 0 {
			if _, err := mc.StatObject(ctx, "uploads", key, minio.StatObjectOptions{}); err == nil {
				t.Errorf("%s: infected and still there", key)
			}
			continue
		}
		tg, err := mc.GetObjectTagging(ctx, "uploads", key, minio.GetObjectTaggingOptions{})
		if err != nil || tg.ToMap()["lazaret-status"] != "clean" {
			t.Errorf("%s: tags %v, %v", key, tg, err)
		}
	}
}
