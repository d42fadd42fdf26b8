package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/testenv"
)

// minioAMQPTarget configures MinIO's AMQP target PRIMARY as
// bucket-av-scanner's init does: a durable topic exchange, persistent
// messages, routing key bucket_notifications.
func minioAMQPTarget(amqpURL, exchange string) map[string]string {
	return map[string]string{
		"MINIO_NOTIFY_AMQP_ENABLE_PRIMARY":        "on",
		"MINIO_NOTIFY_AMQP_URL_PRIMARY":           amqpURL,
		"MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY":      exchange,
		"MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY": "topic",
		"MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY":   "bucket_notifications",
		"MINIO_NOTIFY_AMQP_DURABLE_PRIMARY":       "on",
		"MINIO_NOTIFY_AMQP_DELIVERY_MODE_PRIMARY": "2",
	}
}

// TestBucketAVScannerTopology: bucket-av-scanner's deployment, unchanged —
// MinIO publishes to a RabbitMQ topic exchange, lazaret is configured with
// that project's environment variables — scans, tags with TAG_KEY
// "scanned", deletes infected objects and posts results to PUBLISH_URL.
func TestBucketAVScannerTopology(t *testing.T) {
	amqpURL := testenv.AMQP(t)
	clamdAddr := testenv.ClamdAddr(t)
	u, _ := url.Parse(amqpURL)
	pass, _ := u.User.Password()
	name := fmt.Sprintf("lz-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())

	mio := testenv.StartMinIO(t, minioAMQPTarget(amqpURL, name))
	rc := &receiver{secret: "", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	clamdHost, clamdPort, _ := net.SplitHostPort(strings.TrimPrefix(clamdAddr, "tcp://"))
	env := map[string]string{
		"MINIO_SERVER_URL":           mio.Endpoint,
		"MINIO_USER_NAME":            mio.User,
		"MINIO_USER_PASSWORD":        mio.Password,
		"MINIO_BUCKET_NAME":          "storagebucket",
		"RABBITMQ_ENDPOINT":          u.Hostname(),
		"LAZARET_AMQP_PORT":          u.Port(),
		"RABBITMQ_PORT":              "15672",
		"RABBITMQ_REGULAR_USER_NAME": u.User.Username(),
		"RABBITMQ_REGULAR_USER_PASS": pass,
		"RABBITMQ_QUEUE_NAME":        name,
		"RABBITMQ_TOPIC":             name,
		"RABBITMQ_QUEUE_ROUTING_KEY": "bucket_notifications",
		"CLAMD_ENDPOINT":             clamdHost,
		"CLAMD_PORT":                 clamdPort,
		"DELETE_FILE":                "true",
		"TAG_FILES":                  "true",
		"REPORT_CLEAN":               "true",
		"PUBLISH_URL":                hook.URL,
		"LAZARET_LISTEN":             "127.0.0.1:0",
		"LAZARET_DATA_DIR":           t.TempDir(),
		"LAZARET_LOG_LEVEL":          "warn",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(context.Background(), cfg, Options{HTTP: true, Workers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	}()

	// Wait for lazaret's consumer on the queue.
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	defer func() {
		ch, _ := conn.Channel()
		ch.QueueDelete(name, false, false, false)
		ch.QueueDelete(name+".dead", false, false, false)
		ch.ExchangeDelete(name, false, false)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err == nil && q.Consumers > 0 {
			break
		}
		if err != nil {
			ch, _ = conn.Channel()
		}
		if time.Now().After(deadline) {
			t.Fatal("lazaret never consumed the queue")
		}
		time.Sleep(50 * time.Millisecond)
	}

	ctx := context.Background()
	mc := subscribedBucket(t, mio, "storagebucket", "arn:minio:sqs::PRIMARY:amqp")
	for key, data := range map[string][]byte{"a b+c.txt": []byte("clean bytes"), "eicar.com": testenv.EICAR} {
		if _, err := mc.PutObject(ctx, "storagebucket", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A malformed message on the same queue is dead-lettered; the consumer goes on.
	ch.PublishWithContext(ctx, name, "bucket_notifications", false, false, amqp.Publishing{Body: []byte("{not json")})

	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(rc.byKey()) < 2 {
		time.Sleep(100 * time.Millisecond)
	}
	got := rc.byKey()
	if got["a b+c.txt"]["verdict"] != "clean" || got["eicar.com"]["verdict"] != "infected" {
		t.Fatalf("notifications: %v", got)
	}
	tg, err := mc.GetObjectTagging(ctx, "storagebucket", "a b+c.txt", minio.GetObjectTaggingOptions{})
	if err != nil || tg.ToMap()["scanned"] != "clean" {
		t.Errorf("clean object tags: %v, %v; want scanned=clean", tg, err)
	}
	if _, err := mc.StatObject(ctx, "storagebucket", "eicar.com", minio.StatObjectOptions{}); err == nil {
		t.Error("infected object still there, want deleted (DELETE_FILE=true)")
	}
	dead, err := ch.QueueDeclarePassive(name+".dead", true, false, false, false, nil)
	if err != nil || dead.Messages != 1 {
		t.Errorf("dead-letter queue: %+v, %v", dead, err)
	}
}
