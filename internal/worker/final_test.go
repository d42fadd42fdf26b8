package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/queue/amqpq"
	"github.com/lazaret/lazaret/internal/queue/natsq"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
	"github.com/lazaret/lazaret/internal/worker"
)

// finalRedelivery: two deliveries, retried at once, so that a job reaches
// its final delivery in a second.
var finalRedelivery = queue.Redelivery{AckWait: 5 * time.Second, MaxDeliver: 2, Backoff: []time.Duration{50 * time.Millisecond}}

// finalQueues are the real brokers a worker consumes in
// TestFinalAttemptUnreadable and TestDiedOnFinalAttempt: each opens the
// queue name (the same queue when called twice) with redelivery r.
var finalQueues = map[string]func(t *testing.T, name string, r queue.Redelivery) queue.Queue{
	"nats": func(t *testing.T, name string, r queue.Redelivery) queue.Queue {
		url := testenv.NATS(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		q, err := natsq.Open(ctx, natsq.Config{URL: url, Stream: name, Subject: "lazaret.test." + name, Consumer: "workers",
			Redelivery: r}, testenv.Logger(t, slog.LevelWarn))
		if err != nil {
			t.Fatalf("natsq: %v", err)
		}
		t.Cleanup(func() {
			q.Close()
			nc, err := nats.Connect(url)
			if err != nil {
				return
			}
			defer nc.Close()
			if js, err := jetstream.New(nc); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				js.DeleteStream(ctx, name)
			}
		})
		return q
	},
	"amqp": func(t *testing.T, name string, r queue.Redelivery) queue.Queue {
		url := testenv.AMQP(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		name = "lazaret.test." + name
		q, err := amqpq.Open(ctx, amqpq.Config{URL: url, Queue: name, Redelivery: r}, testenv.Logger(t, slog.LevelWarn))
		if err != nil {
			t.Fatalf("amqpq: %v", err)
		}
		t.Cleanup(func() {
			q.Close()
			conn, err := amqp.Dial(url)
			if err != nil {
				return
			}
			defer conn.Close()
			for _, n := range []string{name, name + amqpq.DefaultDeadLetterSuffix, name + ".delay.50ms"} {
				if ch, err := conn.Channel(); err == nil {
					ch.QueueDelete(n, false, false, false)
					ch.Close()
				}
			}
		})
		return q
	},
}

// TestFinalAttemptUnreadable: a queued job whose bytes cannot be read on
// any delivery (the S3 server is down) ends, after its final delivery, as
// done with an error verdict and its reason, and is notified — not left
// queued for ever once the queue has dropped its message.
func TestFinalAttemptUnreadable(t *testing.T) {
	m := testenv.StartMinIO(t, nil)
	ctx := t.Context()
	mc, err := minio.New(m.Endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Password, "")})
	if err != nil {
		t.Fatal(err)
	}
	const bucketName, key = "uploads", "a/x.bin"
	if err := mc.MakeBucket(ctx, bucketName, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	body := []byte("hello")
	info, err := mc.PutObject(ctx, bucketName, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.Open(ctx, objstore.Config{Endpoint: m.Endpoint, AccessKey: m.User, SecretKey: m.Password, PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objects.Close() })
	blobs := objstore.NewBlobs(objects, bucketName, "blobs/")
	const uploadID = "01JD6Q3K8M4Z7X2V9B1N5T0RUP"
	if _, err := blobs.Put(ctx, uploadID, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	// S3 goes away for good: every read fails, neither "not found" nor
	// "access denied".
	m.Stop()

	sources := map[string]*scan.Job{
		"object": {ID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Name: "x.bin", Size: 5,
			Source: scan.Source{Kind: "s3", Bucket: bucketName, Key: key, ETag: info.ETag}},
		"upload": {ID: uploadID, Name: "x.bin", Size: 5, Source: scan.Source{Kind: "upload"}},
	}
	run := time.Now().UnixNano()
	for qname, open := range finalQueues {
		for sname, tmpl := range sources {
			t.Run(qname+"/"+sname, func(t *testing.T) {
				q := open(t, fmt.Sprintf("LZFINAL_%d_%s_%s", run, qname, sname), finalRedelivery)
				jobs, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { jobs.Close() })
				p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{&engine{}}, Store: jobs})
				if err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				var notified []*scan.Job
				w, err := worker.New(worker.Config{Queue: q, Jobs: jobs, Pipeline: p, Objects: objects, Blobs: blobs,
					Concurrency: 1, SoftStop: -1, Logger: testenv.Logger(t, slog.LevelWarn),
					Notify: func(_ context.Context, j *scan.Job) error {
						mu.Lock()
						defer mu.Unlock()
						c := *j
						notified = append(notified, &c)
						return nil
					}})
				if err != nil {
					t.Fatal(err)
				}
				job := *tmpl
				job.Status, job.CreatedAt = scan.Queued, time.Now().UTC()
				if err := jobs.CreateJob(t.Context(), &job); err != nil {
					t.Fatal(err)
				}
				if err := q.Publish(t.Context(), queue.Message{JobID: job.ID}); err != nil {
					t.Fatal(err)
				}
				wctx, stop := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- w.Run(wctx) }()
				defer func() {
					stop()
					if err := <-done; err != nil {
						t.Errorf("Run: %v", err)
					}
				}()

				// Wait for the job to end, or for the queue to be empty
				// for a while (its message gone) with the job not done.
				deadline := time.Now().Add(30 * time.Second)
				var stored *scan.Job
				empty := 0
				for {
					if stored, err = jobs.GetJob(t.Context(), job.ID); err != nil {
						t.Fatal(err)
					}
					if stored.Status == scan.Done {
						break
					}
					if st, err := q.Stats(t.Context()); err == nil && st.Depth() == 0 {
						empty++
					} else {
						empty = 0
					}
					if empty >= 20 || time.Now().After(deadline) {
						t.Fatalf("job %s (%s, attempts %d, error %q) with its queue message gone (queue empty: %v); want done with an error verdict",
							stored.Status, stored.Verdict, stored.Attempts, stored.Error, empty >= 20)
					}
					time.Sleep(100 * time.Millisecond)
				}
				if stored.Verdict != scan.Error || stored.Reason == scan.ReasonNone {
					t.Errorf("job done %s, reason %q; want error with a reason", stored.Verdict, stored.Reason)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(notified) != 1 || notified[0].Verdict != scan.Error {
					t.Errorf("notified %d times; want once, with the error verdict", len(notified))
				}
			})
		}
	}
}
