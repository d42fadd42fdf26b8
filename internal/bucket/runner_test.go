package bucket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/engine/clamd"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue/natsq"
	"github.com/lazaret/lazaret/internal/s3event"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
	"github.com/lazaret/lazaret/internal/worker"
)

// flakySaves is the real store whose SaveJob fails while down is set, as
// a store that is briefly unreachable (a PostgreSQL failover) does.
type flakySaves struct {
	*sqlite.Store
	down atomic.Bool
}

func (s *flakySaves) SaveJob(ctx context.Context, job *scan.Job, from scan.Status, cv *scan.CachedVerdict) error {
	if s.down.Load() {
		return errors.New("store unreachable")
	}
	return s.Store.SaveJob(ctx, job, from, cv)
}

// TestRunnerRequeueNotStored: an event scanned in place whose engine fails
// while the store cannot save the job for a retry is not acknowledged: the
// event is then all there is of the job. Its redelivery, with the store
// back, stores the job and queues it.
func TestRunnerRequeueNotStored(t *testing.T) {
	ctx := t.Context()
	m := testenv.StartMinIO(t, nil)
	mc, err := minio.New(m.Endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Password, "")})
	if err != nil {
		t.Fatal(err)
	}
	const bucketName, key = "uploads", "x.bin"
	if err := mc.MakeBucket(ctx, bucketName, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := mc.PutObject(ctx, bucketName, key, bytes.NewReader([]byte("hello")), 5, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.Open(ctx, objstore.Config{Endpoint: m.Endpoint, AccessKey: m.User, SecretKey: m.Password, PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objects.Close() })

	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &flakySaves{Store: db}

	// clamd is down (restarting): every scan is an engine error.
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := clamd.New(clamd.Config{Name: "clamav", Addresses: []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Jobs: st, Pipeline: p, Objects: objects})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("LZRUNNER_%d", time.Now().UnixNano())
	q, err := natsq.Open(ctx, natsq.Config{URL: testenv.NATS(t), Stream: name, Subject: "lazaret.test." + name, Consumer: "workers"},
		testenv.Logger(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		deleteStream(t, testenv.NATS(t), name)
	})
	in, err := bucket.New(bucket.Config{Jobs: st, Queue: q, Runner: w, Logger: testenv.Logger(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}

	event := fmt.Appendf(nil, `{"Records":[{"eventVersion":"2.0","eventSource":"minio:s3","eventTime":"2026-03-02T11:05:42.318Z",
		"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q,"size":5,"eTag":%q,"sequencer":"1898F6C2A3C1E2F0"}}}]}`,
		bucketName, key, info.ETag)

	evs, err := s3event.Parse(event)
	if err != nil || len(evs) != 1 {
		t.Fatalf("parse the event: %d events, %v", len(evs), err)
	}
	id := bucket.JobID(evs[0])

	st.down.Store(true)
	if _, err := in.HandleDelivery(ctx, event, false); err == nil {
		_, gerr := st.GetJob(ctx, id)
		t.Fatalf("event handled without error (it would be acknowledged) while its job is not stored (get job: %v)", gerr)
	}
	if depth, err := q.Stats(ctx); err != nil || depth.Depth() != 0 {
		t.Errorf("queue %+v (%v); want nothing queued for a job that is not stored", depth, err)
	}

	// Redelivered, with the store back: the job is stored, and queued for
	// its retry.
	st.down.Store(false)
	if _, err := in.HandleDelivery(ctx, event, true); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	job, err := st.GetJob(ctx, id)
	if err != nil {
		t.Fatalf("redelivery: get job: %v", err)
	}
	if job.Status != scan.Queued || job.Attempts != 1 {
		t.Errorf("redelivery: job %s %s, %d attempts; want queued after one attempt", job.Status, job.Verdict, job.Attempts)
	}
	if depth, err := q.Stats(ctx); err != nil || depth.Depth() != 1 {
		t.Errorf("redelivery: queue %+v (%v); want the job queued", depth, err)
	}
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
