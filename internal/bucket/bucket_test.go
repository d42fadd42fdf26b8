package bucket

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/s3event"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "s3event", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// published records what the intake queued. The queue drivers have their
// own conformance suite; here only the intake's decisions are under test.
type published struct {
	mu  sync.Mutex
	ids []string
}

func (p *published) Publish(_ context.Context, m queue.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, m.JobID)
	return nil
}

func TestHandle(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pub := &published{}
	in, err := New(Config{Jobs: st, Queue: pub, QuarantineBucket: "storagebucket", QuarantinePrefix: "quarantine/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fixture string
		want    Outcome
	}{
		{"minio-put.json", Outcome{Queued: 1}},
		{"minio-put.json", Outcome{Duplicates: 1}}, // redelivered: same job, re-published while queued
		{"minio-puttagging.json", Outcome{Ignored: 1}},
		{"minio-delete.json", Outcome{Ignored: 1}},
		{"aws-test-event.json", Outcome{}},
		{"aws-batch-3.json", Outcome{Queued: 2, Ignored: 1}},
	} {
		out, err := in.Handle(ctx, fixture(t, tc.fixture))
		if err != nil {
			t.Fatalf("%s: %v", tc.fixture, err)
		}
		out.JobIDs, tc.want.JobIDs = nil, nil
		if out.Queued != tc.want.Queued || out.Duplicates != tc.want.Duplicates ||
			out.Ignored != tc.want.Ignored || out.OutOfScope != tc.want.OutOfScope {
			t.Errorf("%s: got %+v, want %+v", tc.fixture, out, tc.want)
		}
	}
	if len(pub.ids) != 4 || pub.ids[0] != pub.ids[1] {
		t.Errorf("published %v, want the put twice (same job) and the batch's two", pub.ids)
	}
	job, err := st.GetJob(ctx, pub.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != scan.Queued || job.Source.Kind != "s3" || job.Source.Bucket != "storagebucket" ||
		job.Source.Key != "incoming/a b+c" || job.Source.ETag != "44d88612fea8a8f36de82e1278abb02f" || job.Size != 68 {
		t.Errorf("got job %+v", job)
	}
	if _, err := in.Handle(ctx, []byte(`{"Records": [`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: got %v, want ErrMalformed", err)
	}
}

func TestJobIDIsStable(t *testing.T) {
	evs, err := s3event.Parse(fixture(t, "minio-put.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := JobID(evs[0]), JobID(evs[0])
	other := evs[0]
	other.Sequencer = "X"
	if a != b || a == JobID(other) || len(a) != 26 {
		t.Errorf("got %s, %s, %s", a, b, JobID(other))
	}
}

func TestMatch(t *testing.T) {
	b := config.Bucket{Name: "u", IncludePrefixes: []string{"incoming/"}, ExcludePrefixes: []string{"incoming/tmp/"},
		ExcludeSuffixes: []string{".part"}, MinSize: 1, MaxSize: 100}
	for _, tc := range []struct {
		key  string
		size int64
		want bool
	}{
		{"incoming/a.zip", 10, true},
		{"other/a.zip", 10, false},
		{"incoming/tmp/a.zip", 10, false},
		{"incoming/a.part", 10, false},
		{"incoming/empty", 0, false},
		{"incoming/big", 101, false},
	} {
		if got := Match(b, tc.key, tc.size); got != tc.want {
			t.Errorf("Match(%q, %d) = %v, want %v", tc.key, tc.size, got, tc.want)
		}
	}
	in, _ := New(Config{Jobs: nilJobs{}, Queue: &published{}, Buckets: []config.Bucket{b}})
	if in.inScope(s3event.Event{Bucket: "elsewhere", Key: "incoming/a"}) {
		t.Error("an unlisted bucket is in scope")
	}
}

type nilJobs struct{}

func (nilJobs) CreateJob(context.Context, *scan.Job) error        { return nil }
func (nilJobs) GetJob(context.Context, string) (*scan.Job, error) { return nil, nil }
