package server

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/testenv"
)

// minioNATSTarget configures MinIO's NATS target PRIMARY with JetStream on,
// publishing on subject.
func minioNATSTarget(natsURL, subject string) map[string]string {
	u, _ := url.Parse(natsURL)
	return map[string]string{
		"MINIO_NOTIFY_NATS_ENABLE_PRIMARY":    "on",
		"MINIO_NOTIFY_NATS_ADDRESS_PRIMARY":   u.Host,
		"MINIO_NOTIFY_NATS_SUBJECT_PRIMARY":   subject,
		"MINIO_NOTIFY_NATS_JETSTREAM_PRIMARY": "on",
	}
}

// TestBucketScanningNATS: MinIO's NATS target with JetStream on; lazaret
// creates the stream, consumes it and quarantines what is infected.
func TestBucketScanningNATS(t *testing.T) {
	natsURL := testenv.NATS(t)
	subject := fmt.Sprintf("lz.events.%d.%d", os.Getpid(), time.Now().UnixNano())
	mio := testenv.StartMinIO(t, minioNATSTarget(natsURL, subject))
	stream := strings.ReplaceAll(subject, ".", "_")
	c := start(t, func(cfg *config.Config) {
		cfg.Log.Level = "warn"
		cfg.S3 = config.S3{Endpoint: mio.Endpoint, AccessKey: mio.User, SecretKey: config.Secret(mio.Password), PathStyle: true}
		cfg.Effects.OnInfected, cfg.Effects.QuarantineBucket, cfg.Effects.QuarantinePrefix = "quarantine", "uploads", "quarantine/"
		cfg.Events.NATS = &config.NATSEvents{URL: config.Secret(natsURL), Stream: stream, Subject: subject}
	}, Options{})
	waitStream(t, natsURL, stream)
	ctx := context.Background()
	mc := subscribedBucket(t, mio, "uploads", "arn:minio:sqs::PRIMARY:nats")
	if _, err := mc.PutObject(ctx, "uploads", "in/eicar.com", bytes.NewReader(testenv.EICAR), int64(len(testenv.EICAR)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var jobs []scan.Job
	for time.Now().Before(deadline) {
		jobs = listAll(t, c)
		if len(jobs) == 1 && jobs[0].Status == scan.Done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(jobs) != 1 || jobs[0].Verdict != scan.Infected || strings.Join(jobs[0].Actions, ",") != "tagged,quarantined" {
		t.Fatalf("jobs: %+v", jobs)
	}
	if _, err := mc.StatObject(ctx, "uploads", "in/eicar.com", minio.StatObjectOptions{}); err == nil {
		t.Error("original still there after quarantine")
	}
	tg, err := mc.GetObjectTagging(ctx, "uploads", "quarantine/in/eicar.com", minio.GetObjectTaggingOptions{})
	if err != nil || tg.ToMap()["lazaret-status"] != "infected" {
		t.Errorf("quarantine copy tags: %v, %v", tg, err)
	}
	// The quarantine copy's own event must not become a job.
	time.Sleep(time.Second)
	if n := len(listAll(t, c)); n != 1 {
		t.Errorf("got %d jobs, want 1 (the quarantine copy is lazaret's own write)", n)
	}
}

// TestResultsPublishedToBrokers: with notify.amqp and notify.nats set,
// every result is published on lazaret.results.<verdict>.
func TestResultsPublishedToBrokers(t *testing.T) {
	natsURL := testenv.NATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix := fmt.Sprintf("lz.res.%d%d", os.Getpid(), time.Now().UnixNano())
	sub, _ := nc.SubscribeSync(prefix + ".>")
	nc.Flush()
	c := start(t, func(cfg *config.Config) {
		cfg.Notify.NATS = &config.NATSNotify{URL: config.Secret(natsURL), SubjectPrefix: prefix}
	}, Options{})
	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"eicar.com": testenv.EICAR})
	if code != 202 {
		t.Fatalf("got %d %s", code, b)
	}
	m, err := sub.NextMsg(15 * time.Second)
	if err != nil || m.Subject != prefix+".infected" || !strings.Contains(string(m.Data), `"event":"scan.completed"`) {
		t.Errorf("got %+v, %v", m, err)
	}
}
