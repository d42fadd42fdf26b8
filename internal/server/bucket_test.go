package server

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/testenv"
)

// receiver is a webhook receiver that checks signatures and keeps one
// delivery per delivery ID, as a real receiver would.
type receiver struct {
	secret string
	mu     sync.Mutex
	got    map[string]map[string]any
	bad    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	sig := r.Header.Get(notify.SignatureHeader)
	if (rc.secret == "" && sig != "") || (rc.secret != "" && !notify.Verify([]byte(rc.secret), body, sig)) {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var m map[string]any
	json.Unmarshal(body, &m)
	rc.got[r.Header.Get(notify.DeliveryHeader)] = m
}

func (rc *receiver) byKey() map[string]map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]map[string]any{}
	for _, m := range rc.got {
		src, _ := m["source"].(map[string]any)
		if k, ok := src["key"].(string); ok {
			out[k] = m
		}
	}
	return out
}

func zipped(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create(name)
	w.Write(data)
	zw.Close()
	return buf.Bytes()
}

// TestBucketScanningWebhookTarget: MinIO publishes object events to
// lazaret's webhook route; lazaret scans each object once with clamd,
// merges its tags, deletes what is infected, and posts signed results.
func TestBucketScanningWebhookTarget(t *testing.T) {
	rc := &receiver{secret: "hook-secret", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	engines := []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: testenv.ClamdAddr(t), Timeout: 30 * time.Second}}
	mc, c := startBucketServer(t, engines, hook.URL, func(cfg *config.Config) {
		cfg.Buckets = []config.Bucket{{Name: "uploads", IncludePrefixes: []string{"incoming/"}}}
	})
	ctx := context.Background()

	userTags, _ := tags.NewTags(map[string]string{"team": "a", "project": "b", "tier": "c"}, true)
	objects := map[string][]byte{
		"incoming/clean file é.txt": []byte("nothing to see here"),
		"incoming/eicar.com":        testenv.EICAR,
		"incoming/nested.zip":       zipped(t, "eicar.com", testenv.EICAR),
		"incoming/empty":            {},
		"elsewhere/eicar.com":       testenv.EICAR, // out of scope: left alone
	}
	for key, data := range objects {
		opts := minio.PutObjectOptions{}
		if strings.HasPrefix(key, "incoming/clean") {
			opts.UserTags = userTags.ToMap()
		}
		if _, err := mc.PutObject(ctx, "uploads", key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) && len(rc.byKey()) < 4 {
		time.Sleep(100 * time.Millisecond)
	}
	got := rc.byKey()
	for key, want := range map[string]string{
		"incoming/clean file é.txt": "clean", "incoming/eicar.com": "infected",
		"incoming/nested.zip": "infected", "incoming/empty": "clean",
	} {
		if v := got[key]["verdict"]; v != want {
			t.Errorf("%s: notified verdict %v, want %s", key, v, want)
		}
		if e := got[key]["event"]; e != notify.EventScanCompleted {
			t.Errorf("%s: event %v", key, e)
		}
	}
	if _, ok := got["elsewhere/eicar.com"]; ok {
		t.Error("an out-of-scope object was scanned")
	}
	if rc.bad != 0 {
		t.Errorf("%d deliveries had bad signatures", rc.bad)
	}

	// Clean: tags merged with the user's three.
	tg, err := mc.GetObjectTagging(ctx, "uploads", "incoming/clean file é.txt", minio.GetObjectTaggingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := tg.ToMap()
	if m["lazaret-status"] != "clean" || m["team"] != "a" || m["project"] != "b" || m["tier"] != "c" {
		t.Errorf("clean object tags: %v", m)
	}
	// Infected: deleted (bucket-av-scanner's default).
	for _, key := range []string{"incoming/eicar.com", "incoming/nested.zip"} {
		if _, err := mc.StatObject(ctx, "uploads", key, minio.StatObjectOptions{}); err == nil {
			t.Errorf("%s: still there, want deleted", key)
		}
	}
	if _, err := mc.StatObject(ctx, "uploads", "elsewhere/eicar.com", minio.StatObjectOptions{}); err != nil {
		t.Errorf("out-of-scope object: %v", err)
	}

	// lazaret's own tag writes fired PutTagging events: none became a job.
	time.Sleep(time.Second)
	jobs := listAll(t, c)
	if len(jobs) != 4 {
		t.Errorf("got %d jobs, want 4 (one per in-scope object, none for tag writes)", len(jobs))
	}
	for _, j := range jobs {
		if j.Source.Kind != "s3" || j.Source.Bucket != "uploads" {
			t.Errorf("job source %+v", j.Source)
		}
		if j.Verdict == "infected" && strings.Join(j.Actions, ",") != "tagged,deleted" {
			t.Errorf("%s: actions %v, want tagged,deleted", j.Source.Key, j.Actions)
		}
	}
}

// startBucketServer starts lazaret on MinIO's webhook target with the
// given engines and webhook receiver, and returns the MinIO client.
func startBucketServer(t *testing.T, engines []config.Engine, hookURL string, mutate func(*config.Config)) (*minio.Client, *client) {
	t.Helper()
	lport, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	mio := testenv.StartMinIO(t, map[string]string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY":    "on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY":  fmt.Sprintf("http://127.0.0.1:%d/v1/events/s3", lport),
		"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_PRIMARY": t.TempDir(),
	})
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = fmt.Sprintf("127.0.0.1:%d", lport), t.TempDir()
	cfg.Log.Level = "error"
	cfg.Engines = engines
	cfg.S3 = config.S3{Endpoint: mio.Endpoint, AccessKey: mio.User, SecretKey: config.Secret(mio.Password), PathStyle: true}
	cfg.Notify.Webhooks = []config.Webhook{{URL: config.Secret(hookURL), Secret: "hook-secret", ReportClean: true}}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := Start(context.Background(), cfg, Options{HTTP: true, Workers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	mc := subscribedBucket(t, mio, "uploads", "arn:minio:sqs::PRIMARY:webhook")
	return mc, &client{t: t, base: "http://" + a.Addr()}
}

// TestBucketClamdDownIsNeverClean: with clamd gone, the object's job ends
// as error after its retries, the object is tagged error, never clean,
// and is not deleted.
func TestBucketClamdDownIsNeverClean(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	clamd.Kill()
	rc := &receiver{secret: "hook-secret", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	mc, c := startBucketServer(t, []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: clamd.TCP, Timeout: 2 * time.Second}},
		hook.URL, func(cfg *config.Config) { cfg.Queue.MaxDeliveries = 2 })
	ctx := context.Background()
	if _, err := mc.PutObject(ctx, "uploads", "x.bin", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && len(rc.byKey()) == 0 {
		time.Sleep(100 * time.Millisecond)
	}
	jobs := listAll(t, c)
	if len(jobs) != 1 || jobs[0].Verdict != "error" || jobs[0].Attempts != 2 {
		t.Fatalf("jobs: %+v", jobs)
	}
	tg, err := mc.GetObjectTagging(ctx, "uploads", "x.bin", minio.GetObjectTaggingOptions{})
	if err != nil || tg.ToMap()["lazaret-status"] != "error" {
		t.Errorf("tags: %v, %v; want lazaret-status=error", tg, err)
	}
	if v := rc.byKey()["x.bin"]["verdict"]; v != "error" {
		t.Errorf("notified verdict %v, want error", v)
	}
}

// flakyReceiver answers 503 until up is closed, then records.
type flakyReceiver struct {
	*receiver
	mu   sync.Mutex
	down bool
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.receiver.ServeHTTP(w, r)
}

// TestBucketWebhookReceiverDown: results reach a receiver that was down
// when the scan finished, once it is back, and once per delivery ID.
func TestBucketWebhookReceiverDown(t *testing.T) {
	fr := &flakyReceiver{receiver: &receiver{secret: "hook-secret", got: map[string]map[string]any{}}, down: true}
	hook := httptest.NewServer(fr)
	defer hook.Close()
	mc, c := startBucketServer(t, config.DefaultEngines(), hook.URL, nil)
	ctx := context.Background()
	if _, err := mc.PutObject(ctx, "uploads", "eicar.com", bytes.NewReader(testenv.EICAR), int64(len(testenv.EICAR)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// The scan finishes (and the object goes) while the receiver is down.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if jobs := listAll(t, c); len(jobs) == 1 && jobs[0].Status == "done" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	fr.mu.Lock()
	fr.down = false
	fr.mu.Unlock()
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && len(fr.byKey()) == 0 {
		time.Sleep(200 * time.Millisecond)
	}
	if v := fr.byKey()["eicar.com"]["verdict"]; v != "infected" {
		t.Fatalf("after the receiver came back: got %v, want the infected result", fr.byKey())
	}
	if n := len(fr.got); n != 1 {
		t.Errorf("got %d distinct deliveries, want 1", n)
	}
	// The outbox shows it, and the metrics count it.
	code, b := c.do("GET", "/v1/deliveries?state=delivered", "", nil)
	if code != 200 || !strings.Contains(string(b), `"delivered":1`) || !strings.Contains(string(b), "scan.completed") {
		t.Errorf("deliveries: %d %s", code, b)
	}
	_, b = c.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(b), `lazaret_notify_deliveries{state="delivered"} 1`) {
		t.Error("metrics lack lazaret_notify_deliveries")
	}
}

// TestBucketEventForGoneObject: an event for an object that no longer
// exists (deleted before its scan) is recorded as skipped/not_found and
// not retried; a 100 MiB object is scanned with its tag written.
func TestBucketEventForGoneObjectAndLargeObject(t *testing.T) {
	rc := &receiver{secret: "hook-secret", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	mc, c := startBucketServer(t, config.DefaultEngines(), hook.URL, nil)
	ctx := context.Background()
	// Posted the way MinIO's webhook target would, for a key never written.
	event := `{"EventName":"s3:ObjectCreated:Put","Key":"uploads/ghost.bin","Records":[{"eventVersion":"2.0","eventSource":"minio:s3",
	  "eventTime":"2026-11-24T10:00:00.000Z","eventName":"s3:ObjectCreated:Put",
	  "s3":{"bucket":{"name":"uploads"},"object":{"key":"ghost.bin","size":5,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"1"}}}]}`
	code, b := c.do("POST", "/v1/events/s3", "application/json", strings.NewReader(event))
	if code != 200 {
		t.Fatalf("event: %d %s", code, b)
	}
	big := make([]byte, 100<<20)
	if _, err := mc.PutObject(ctx, "uploads", "big.bin", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && len(rc.byKey()) < 2 {
		time.Sleep(200 * time.Millisecond)
	}
	got := rc.byKey()
	if g := got["ghost.bin"]; g["verdict"] != "skipped" || g["reason"] != "not_found" {
		t.Errorf("gone object: %v", g)
	}
	if g := got["big.bin"]; g["verdict"] != "clean" || g["size"] != float64(100<<20) {
		t.Errorf("100 MiB object: verdict %v size %v", g["verdict"], g["size"])
	}
	tg, err := mc.GetObjectTagging(ctx, "uploads", "big.bin", minio.GetObjectTaggingOptions{})
	if err != nil || tg.ToMap()["lazaret-status"] != "clean" {
		t.Errorf("big object tags: %v, %v", tg, err)
	}
	for _, j := range listAll(t, c) {
		if j.Source.Key == "ghost.bin" && j.Attempts != 1 {
			t.Errorf("the gone object was retried: %d attempts", j.Attempts)
		}
	}
}

// subscribedBucket connects to MinIO, makes a bucket and subscribes it
// to every ObjectCreated event for the target ARN (as bucket-av-scanner's
// init script does: tag writes included).
func subscribedBucket(t *testing.T, mio *testenv.MinIO, bucket, arn string) *minio.Client {
	t.Helper()
	ctx := context.Background()
	mc, err := minio.New(strings.TrimPrefix(mio.Endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(mio.User, mio.Password, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := notification.NewArnFromString(arn)
	if err != nil {
		t.Fatal(err)
	}
	qc := notification.NewConfig(a)
	qc.AddEvents(notification.ObjectCreatedAll)
	nc := notification.Configuration{}
	nc.AddQueue(qc)
	if err := mc.SetBucketNotification(ctx, bucket, nc); err != nil {
		t.Fatal(err)
	}
	return mc
}

// TestBucketPendingTag: with tag_pending, an object is tagged pending as
// soon as its event arrives and stays pending (never clean) while clamd
// is down and its scan is retried.
func TestBucketPendingTag(t *testing.T) {
	clamd := testenv.StartClamd(t, testenv.ClamdOptions{})
	clamd.Kill()
	rc := &receiver{secret: "hook-secret", got: map[string]map[string]any{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	mc, _ := startBucketServer(t, []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: clamd.TCP, Timeout: 2 * time.Second}},
		hook.URL, func(cfg *config.Config) { cfg.Effects.TagPending = true; cfg.Queue.MaxDeliveries = 20 })
	ctx := context.Background()
	if _, err := mc.PutObject(ctx, "uploads", "wait.bin", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var status string
	for time.Now().Before(deadline) {
		tg, err := mc.GetObjectTagging(ctx, "uploads", "wait.bin", minio.GetObjectTaggingOptions{})
		if err == nil {
			status = tg.ToMap()["lazaret-status"]
			if status == "pending" {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status != "pending" {
		t.Fatalf("got lazaret-status %q, want pending", status)
	}
	time.Sleep(3 * time.Second) // retries go on; the object must not turn clean
	tg, _ := mc.GetObjectTagging(ctx, "uploads", "wait.bin", minio.GetObjectTaggingOptions{})
	if s := tg.ToMap()["lazaret-status"]; s != "pending" {
		t.Errorf("after retries with clamd down: lazaret-status %q, want pending", s)
	}
}

// TestReadyNeedsQuarantineBucket: with on_infected: quarantine, /readyz
// fails naming the quarantine bucket until it exists, since every
// infected object would fail its move meanwhile, and passes on the first
// probe after it does (a failure is not cached).
func TestReadyNeedsQuarantineBucket(t *testing.T) {
	engines := []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: testenv.ClamdAddr(t), Timeout: 30 * time.Second}}
	mc, c := startBucketServer(t, engines, "http://127.0.0.1:9/unused", func(cfg *config.Config) {
		cfg.Effects.OnInfected, cfg.Effects.QuarantineBucket = "quarantine", "held"
	})
	code, body := c.do("GET", "/readyz", "", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "quarantine bucket") {
		t.Fatalf("readyz without the quarantine bucket: %d %s", code, body)
	}
	if err := mc.MakeBucket(context.Background(), "held", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, body := c.do("GET", "/readyz", "", nil); code != http.StatusOK {
		t.Errorf("readyz with the quarantine bucket: %d %s", code, body)
	}
	// The success is cached (readyCacheTTL), so that probes do not each
	// ask S3: the bucket's removal shows only after it.
	if err := mc.RemoveBucket(context.Background(), "held"); err != nil {
		t.Fatal(err)
	}
	if code, body := c.do("GET", "/readyz", "", nil); code != http.StatusOK {
		t.Errorf("readyz just after the quarantine bucket went: %d %s, want the cached 200", code, body)
	}
}
