// Command bucket measures bucket scanning end to end — PUT into MinIO,
// MinIO's event through RabbitMQ, lazaret's scan with clamd, the verdict
// tag, the webhook — against raw clamd INSTREAM on the same bytes, side by
// side in one run. bench/bucket/run.sh starts the services and lazaret.
//
// Every object is fresh random bytes; lazaret posts each result to this
// program's webhook receiver right after tagging the object, so the time
// from the PUT's start to the webhook is the PUT→tag latency (plus one
// local HTTP call).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/lazaret/lazaret/bench/internal/benchkit"
)

type tracker struct {
	mu    sync.Mutex
	start map[string]time.Time
	lat   []time.Duration
	puts  []time.Duration // how long the PUTs themselves took
	tail  []time.Duration // from the verdict (job finished_at) to the webhook
	done  chan struct{}
	want  int
}

func (tr *tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Verdict    string               `json:"verdict"`
		Source     struct{ Key string } `json:"source"`
		FinishedAt time.Time            `json:"finished_at"`
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)) // a result is a few hundred bytes
	json.Unmarshal(b, &m)
	now := time.Now()
	tr.mu.Lock()
	if t0, ok := tr.start[m.Source.Key]; ok {
		delete(tr.start, m.Source.Key)
		tr.lat = append(tr.lat, now.Sub(t0))
		tr.tail = append(tr.tail, now.Sub(m.FinishedAt))
		if len(tr.lat) == tr.want {
			close(tr.done)
		}
	}
	tr.mu.Unlock()
}

func (tr *tracker) reset(n int) {
	tr.mu.Lock()
	tr.start, tr.lat, tr.puts, tr.tail, tr.done, tr.want = map[string]time.Time{}, nil, nil, nil, make(chan struct{}), n
	tr.mu.Unlock()
}

func (tr *tracker) begin(key string) {
	tr.mu.Lock()
	tr.start[key] = time.Now()
	tr.mu.Unlock()
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func main() {
	endpoint := flag.String("s3", "", "MinIO host:port")
	user := flag.String("user", "", "access key")
	pass := flag.String("pass", "", "secret key")
	bucket := flag.String("bucket", "storagebucket", "bucket")
	clamd := flag.String("clamd", "", "clamd tcp://host:port")
	listen := flag.String("listen", "127.0.0.1:0", "webhook receiver address (print it with -print-listen)")
	n := flag.Int("n", 500, "objects per measurement")
	size := flag.Int("size", 16<<10, "object size")
	conc := flag.Int("c", 8, "concurrent PUTs")
	ready := flag.String("ready-file", "", "write the receiver's URL here, then wait for this file to be removed")
	setup := flag.Bool("setup", false, "create the bucket and subscribe it to MinIO's AMQP target, then exit")
	events := flag.String("events", "all", "with -setup: all = every ObjectCreated event (bucket-av-scanner), uploads = only uploads and copies (docs/MIGRATION.md)")
	watchFile := flag.String("watch-file", "", "file naming name=pid,... processes whose CPU time per object to report, read once -ready-file is removed")
	flag.Parse()
	if *setup {
		if err := subscribe(*endpoint, *user, *pass, *bucket, *events); err != nil {
			fail(err)
		}
		return
	}

	tr := &tracker{}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	go http.Serve(ln, tr)
	if *ready != "" {
		os.WriteFile(*ready, []byte("http://"+ln.Addr().String()+"/"), 0o644)
		for {
			if _, err := os.Stat(*ready); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	mc, err := minio.New(*endpoint, &minio.Options{Creds: credentials.NewStaticV4(*user, *pass, "")})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	var seq atomic.Int64
	put := func(ctx context.Context, data []byte) error {
		key := fmt.Sprintf("bench/%d-%d", time.Now().UnixNano(), seq.Add(1))
		tr.begin(key)
		t0 := time.Now()
		_, err := mc.PutObject(ctx, *bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		tr.mu.Lock()
		tr.puts = append(tr.puts, time.Since(t0))
		tr.mu.Unlock()
		return err
	}

	// Warm up.
	tr.reset(20)
	benchkit.Measure(ctx, put, 20, *size, *conc)
	waitDone(tr, time.Minute)

	// 1. Saturation: N objects as fast as the PUTs go, until every result is in.
	raw := func(ctx context.Context, data []byte) error { return benchkit.Naive(ctx, *clamd, data) }
	dRaw, err := benchkit.Measure(ctx, raw, *n, *size, *conc)
	if err != nil {
		fail(err)
	}
	// MinIO's own PUT rate into a bucket with no subscription: the
	// ceiling no event-driven scanner on this MinIO can pass.
	plain := func(ctx context.Context, data []byte) error {
		key := fmt.Sprintf("plain/%d-%d", time.Now().UnixNano(), seq.Add(1))
		_, err := mc.PutObject(ctx, *bucket+"-plain", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		return err
	}
	if err := mc.MakeBucket(ctx, *bucket+"-plain", minio.MakeBucketOptions{}); err != nil {
		fail(err)
	}
	dPlain, err := benchkit.Measure(ctx, plain, *n, *size, *conc)
	if err != nil {
		fail(err)
	}
	var procs []proc
	if *watchFile != "" {
		b, _ := os.ReadFile(*watchFile)
		procs = parseWatch(strings.TrimSpace(string(b)))
	}
	cpu0 := cpuTimes(procs)
	tr.reset(*n)
	t0 := time.Now()
	if _, err := benchkit.Measure(ctx, put, *n, *size, *conc); err != nil {
		fail(err)
	}
	waitDone(tr, 5*time.Minute)
	dPipe := time.Since(t0)
	cpu1 := cpuTimes(procs)
	rawRate, pipeRate := float64(*n)/dRaw.Seconds(), float64(*n)/dPipe.Seconds()
	fmt.Printf("size %d B, %d objects, %d concurrent\n", *size, *n, *conc)
	fmt.Printf("raw clamd INSTREAM:               %7.0f objects/s\n", rawRate)
	fmt.Printf("MinIO PUT alone (no events):      %7.0f objects/s\n", float64(*n)/dPlain.Seconds())
	fmt.Printf("PUT -> tag (MinIO+RabbitMQ+lazaret): %7.0f objects/s   ratio %.2f\n", pipeRate, pipeRate/rawRate)
	for i, p := range procs {
		fmt.Printf("  CPU per object, %-9s %6.0f µs\n", p.name+":", float64((cpu1[i]-cpu0[i]).Microseconds())/float64(*n))
	}
	fmt.Printf("  latency at saturation: p50 %v  p99 %v\n", pct(tr.lat, .5).Round(time.Millisecond), pct(tr.lat, .99).Round(time.Millisecond))

	// 2. Half the saturation rate, paced: PUT→tag latency.
	rate := pipeRate / 2
	m := min(*n, int(rate*20)+1) // about 20 s
	tr.reset(m)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	for range m {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, *size)
			rand.Read(data)
			if err := put(ctx, data); err != nil {
				fmt.Fprintln(os.Stderr, "put:", err)
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	waitDone(tr, 5*time.Minute)
	fmt.Printf("at half saturation (%.0f objects/s, %d objects): PUT->tag p50 %v  p99 %v\n",
		rate, m, pct(tr.lat, .5).Round(time.Millisecond), pct(tr.lat, .99).Round(time.Millisecond))
	tr.mu.Lock()
	fmt.Printf("  of which the PUT request itself: p50 %v  p99 %v; verdict to webhook (tag write, store, outbox, POST): p50 %v  p99 %v\n",
		pct(tr.puts, .5).Round(time.Millisecond), pct(tr.puts, .99).Round(time.Millisecond),
		pct(tr.tail, .5).Round(time.Millisecond), pct(tr.tail, .99).Round(time.Millisecond))
	tr.mu.Unlock()
}

type proc struct {
	name string
	pid  int
}

func parseWatch(s string) []proc {
	var ps []proc
	for _, kv := range strings.Split(s, ",") {
		name, pid, ok := strings.Cut(kv, "=")
		if n, err := strconv.Atoi(pid); ok && err == nil {
			ps = append(ps, proc{name, n})
		}
	}
	return ps
}

// cpuTimes reads each process's user+system CPU time from /proc.
func cpuTimes(ps []proc) []time.Duration {
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = benchkit.ProcCPU(p.pid)
	}
	return out
}

func waitDone(tr *tracker, d time.Duration) {
	select {
	case <-tr.done:
	case <-time.After(d):
		tr.mu.Lock()
		fmt.Fprintf(os.Stderr, "timed out: %d of %d results\n", len(tr.lat), tr.want)
		tr.mu.Unlock()
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bucket bench:", err)
	os.Exit(1)
}

// subscribe creates the bucket and its event subscription: as
// bucket-av-scanner's init script does, every ObjectCreated event to the
// AMQP target (events "all"), or only the events of new content
// ("uploads"), which spares MinIO, RabbitMQ and lazaret an event for each
// of lazaret's own tag writes.
func subscribe(endpoint, user, pass, bucket, events string) error {
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(user, pass, "")})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		return err
	}
	arn, err := notification.NewArnFromString("arn:minio:sqs::PRIMARY:amqp")
	if err != nil {
		return err
	}
	qc := notification.NewConfig(arn)
	switch events {
	case "all":
		qc.AddEvents(notification.ObjectCreatedAll)
	case "uploads":
		qc.AddEvents(notification.ObjectCreatedPut, notification.ObjectCreatedCompleteMultipartUpload,
			notification.ObjectCreatedCopy, notification.ObjectCreatedPost)
	default:
		return fmt.Errorf("-events %q: want all or uploads", events)
	}
	nc := notification.Configuration{}
	nc.AddQueue(qc)
	return mc.SetBucketNotification(ctx, bucket, nc)
}
