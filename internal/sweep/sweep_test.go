package sweep_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/sweep"
	"github.com/lazaret/lazaret/internal/testenv"
)

// s3Env is one test's bucket, store and pipeline on a shared MinIO.
type s3Env struct {
	t       *testing.T
	mc      *minio.Client // the test's own client, for setting up and checking
	objects *objstore.Store
	lister  *sweep.S3Lister
	jobs    *sqlite.Store
	scanner *countingScanner
	bucket  string
}

// newS3Env makes a fresh bucket named for the test; oc holds the effect
// settings (the connection ones are filled in).
func newS3Env(t *testing.T, m *testenv.MinIO, name string, oc objstore.Config) *s3Env {
	t.Helper()
	ctx := t.Context()
	host := strings.TrimPrefix(m.Endpoint, "http://")
	mc, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Password, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	oc.Endpoint, oc.AccessKey, oc.SecretKey, oc.PathStyle = m.Endpoint, m.User, m.Password, true
	objects, err := objstore.Open(ctx, oc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objects.Close() })
	lister := sweep.NewS3Lister(objects)
	jobs := openStore(t)
	return &s3Env{t: t, mc: mc, objects: objects, lister: lister, jobs: jobs, scanner: newScanner(t, jobs), bucket: name}
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newScanner returns the real pipeline with the builtin engine (EICAR)
// over jobs, wrapped to count its scans.
func newScanner(t *testing.T, jobs *sqlite.Store) *countingScanner {
	t.Helper()
	set, err := build.Engines(t.Context(), config.DefaultEngines(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	p, err := pipeline.New(pipeline.Config{Engines: set.List(), Store: jobs})
	if err != nil {
		t.Fatal(err)
	}
	return &countingScanner{next: p}
}

// countingScanner counts the pipeline's scans and remembers the names of
// those that ended in a stored verdict.
type countingScanner struct {
	next  sweep.Scanner
	calls atomic.Int64
	// before, if set, runs before each scan with its number (from 1) and
	// may change the request.
	before func(n int64, req *pipeline.Request)

	mu   sync.Mutex
	done []string // Source.Key or Source.Path
}

func (c *countingScanner) Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error) {
	n := c.calls.Add(1)
	if c.before != nil {
		c.before(n, &req)
	}
	job, err := c.next.Scan(ctx, req)
	if err == nil {
		c.mu.Lock()
		c.done = append(c.done, req.Source.Key+req.Source.Path)
		c.mu.Unlock()
	}
	return job, err
}

// reset forgets the counts, for the next run.
func (c *countingScanner) reset() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	done := c.done
	c.done = nil
	c.calls.Store(0)
	return done
}

func (e *s3Env) put(key string, body []byte) {
	e.t.Helper()
	if _, err := e.mc.PutObject(e.t.Context(), e.bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
}

func (e *s3Env) tags(key string) map[string]string {
	e.t.Helper()
	tg, err := e.mc.GetObjectTagging(e.t.Context(), e.bucket, key, minio.GetObjectTaggingOptions{})
	if err != nil {
		e.t.Fatalf("get tags %s: %v", key, err)
	}
	return tg.ToMap()
}

func (e *s3Env) setTags(key string, m map[string]string) {
	e.t.Helper()
	tg, err := tags.MapToObjectTags(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.mc.PutObjectTagging(e.t.Context(), e.bucket, key, tg, minio.PutObjectTaggingOptions{}); err != nil {
		e.t.Fatalf("put tags %s: %v", key, err)
	}
}

func (e *s3Env) exists(key string) bool {
	e.t.Helper()
	_, err := e.mc.StatObject(e.t.Context(), e.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return true
	}
	if minio.ToErrorResponse(err).StatusCode == 404 {
		return false
	}
	e.t.Fatalf("stat %s: %v", key, err)
	return false
}

// config is the sweep configuration for target.
func (e *s3Env) config(target string) sweep.Config {
	e.t.Helper()
	tg, err := sweep.ParseTarget(target)
	if err != nil {
		e.t.Fatal(err)
	}
	return sweep.Config{Target: tg, Pipeline: e.scanner, Jobs: e.jobs, Lister: e.lister, Objects: e.objects, Tags: e.lister, Concurrency: 4}
}

// run sweeps and checks that every listed object is accounted for once.
func run(t *testing.T, ctx context.Context, cfg sweep.Config) (sweep.Summary, error) {
	t.Helper()
	prog := &recorder{}
	cfg.Progress = prog
	sum, err := sweep.Run(ctx, cfg)
	checkSummary(t, sum)
	if prog.total.Load() != sum.Listed || prog.done.Load() != sum.Listed || !prog.known.Load() {
		t.Errorf("progress: total %d, done %d, known %v; want %d, %d, true", prog.total.Load(), prog.done.Load(), prog.known.Load(), sum.Listed, sum.Listed)
	}
	if prog.infected.Load() != sum.Infected {
		t.Errorf("progress: %d infected, want %d", prog.infected.Load(), sum.Infected)
	}
	return sum, err
}

func checkSummary(t *testing.T, s sweep.Summary) {
	t.Helper()
	if got := s.Skipped + s.Clean + s.Infected + s.Unscannable + s.Errors + s.Unfinished; got != s.Listed {
		t.Errorf("summary %+v: outcomes add up to %d, want Listed = %d", s, got, s.Listed)
	}
	if got := s.Resumed + s.Tagged + s.OutOfScope + s.Gone; got != s.Skipped {
		t.Errorf("summary %+v: skips add up to %d, want Skipped = %d", s, got, s.Skipped)
	}
	if got := s.Clean + s.Infected + s.Unscannable; got != s.Scanned {
		t.Errorf("summary %+v: verdicts add up to %d, want Scanned = %d", s, got, s.Scanned)
	}
}

// recorder is a Progress that counts.
type recorder struct {
	total, done, infected atomic.Int64
	known                 atomic.Bool
}

func (r *recorder) AddTotal(n int64) { r.total.Add(n) }
func (r *recorder) TotalKnown()      { r.known.Store(true) }
func (r *recorder) Done(_ int64, infected bool) {
	r.done.Add(1)
	if infected {
		r.infected.Add(1)
	}
}

// fill puts n objects under prefix, EICAR at the given indexes, and
// returns their keys.
func (e *s3Env) fill(prefix string, n int, eicarAt ...int) (keys []string) {
	e.t.Helper()
	for i := range n {
		key := fmt.Sprintf("%s%02d.txt", prefix, i)
		if i%4 == 1 {
			key = fmt.Sprintf("%ssub/dir/%02d.bin", prefix, i) // nested keys too
		}
		body := testenv.Deterministic(key, 500+i)
		if slices.Contains(eicarAt, i) {
			body = testenv.EICAR
		}
		e.put(key, body)
		keys = append(keys, key)
	}
	return keys
}

func want(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d, want %d", what, got, want)
	}
}

// TestS3 runs the bucket sweeps against one real MinIO; each subtest has
// its own bucket and store.
func TestS3(t *testing.T) {
	m := testenv.StartMinIO(t, nil)

	t.Run("prefix", func(t *testing.T) {
		t.Parallel()
		e := newS3Env(t, m, "sweep-prefix", objstore.Config{OnInfected: objstore.OnInfectedDelete})
		keys := e.fill("in/", 20, 3, 9, 14)
		// Outside the prefix, including a key that shares its first
		// letters and an EICAR that must survive.
		outside := []string{"inbox/a.txt", "other/b.txt", "root.txt", "other/eicar.com"}
		for _, k := range outside {
			body := []byte("outside " + k)
			if strings.HasSuffix(k, "eicar.com") {
				body = testenv.EICAR
			}
			e.put(k, body)
		}

		cfg := e.config("s3://sweep-prefix/in/")
		var notified atomic.Int64
		cfg.Notify = func(_ context.Context, j *scan.Job) error {
			if j.Status != scan.Done {
				t.Errorf("notified of job %s in status %s", j.ID, j.Status)
			}
			notified.Add(1)
			return nil
		}
		sum, err := run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want(t, "notifications", notified.Load(), 20)
		want(t, "listed", sum.Listed, 20)
		want(t, "scanned", sum.Scanned, 20)
		want(t, "clean", sum.Clean, 17)
		want(t, "infected", sum.Infected, 3)
		want(t, "errors", sum.Errors, 0)
		want(t, "pipeline calls", e.scanner.calls.Load(), 20)
		if sum.Bytes <= 0 {
			t.Errorf("bytes: got %d, want > 0", sum.Bytes)
		}
		for i, k := range keys {
			if i == 3 || i == 9 || i == 14 {
				if e.exists(k) {
					t.Errorf("infected %s still exists, want it deleted", k)
				}
				continue
			}
			if got := e.tags(k)[objstore.DefaultTagKey]; got != "clean" {
				t.Errorf("%s: status tag %q, want clean", k, got)
			}
		}
		for _, k := range outside {
			if !e.exists(k) {
				t.Errorf("%s outside the prefix was deleted", k)
			} else if tg := e.tags(k); len(tg) != 0 {
				t.Errorf("%s outside the prefix was tagged %v", k, tg)
			}
		}
		// The jobs look like any bucket job.
		page, err := e.jobs.ListJobs(t.Context(), store.JobFilter{Bucket: e.bucket, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) != 20 {
			t.Fatalf("stored jobs: got %d, want 20", len(page.Jobs))
		}
		for _, j := range page.Jobs {
			if j.Status != scan.Done || j.Source.Kind != "s3" || j.Source.ETag == "" || !strings.HasPrefix(j.Source.Key, "in/") {
				t.Errorf("job %s: status %s, source %+v; want done, s3 with an ETag, under in/", j.ID, j.Status, j.Source)
			}
			wantAction := objstore.ActionTagged
			if j.Verdict == scan.Infected {
				wantAction = objstore.ActionDeleted
			}
			if !slices.Contains(j.Actions, wantAction) {
				t.Errorf("job %s (%s): actions %v, want %s among them", j.ID, j.Verdict, j.Actions, wantAction)
			}
		}

		// Again: everything is resumed, nothing scanned twice.
		e.scanner.reset()
		sum, err = run(t, t.Context(), e.config("s3://sweep-prefix/in/"))
		if err != nil {
			t.Fatalf("second Run: %v", err)
		}
		want(t, "second run: listed", sum.Listed, 17)
		want(t, "second run: resumed", sum.Resumed, 17)
		want(t, "second run: pipeline calls", e.scanner.calls.Load(), 0)
	})

	t.Run("untagged-only", func(t *testing.T) {
		t.Parallel()
		e := newS3Env(t, m, "sweep-untagged", objstore.Config{})
		keys := e.fill("u/", 20, 5, 7)
		var untagged []string
		for i, k := range keys {
			switch {
			case i%2 == 0: // the event path scanned these
				e.setTags(k, map[string]string{objstore.DefaultTagKey: "clean", "owner": "x"})
			case i == 7 || i == 11: // their events arrived, their scans did not
				e.setTags(k, map[string]string{objstore.DefaultTagKey: objstore.StatusPending})
				untagged = append(untagged, k)
			case i == 13: // a user's tag is not a verdict
				e.setTags(k, map[string]string{"owner": "y"})
				untagged = append(untagged, k)
			default:
				untagged = append(untagged, k)
			}
		}
		cfg := e.config("s3://sweep-untagged/u/")
		cfg.UntaggedOnly = true
		sum, err := run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want(t, "tagged", sum.Tagged, 10)
		want(t, "scanned", sum.Scanned, 10)
		want(t, "infected", sum.Infected, 2)
		got := e.scanner.reset()
		sort.Strings(got)
		sort.Strings(untagged)
		if !slices.Equal(got, untagged) {
			t.Errorf("scanned %v, want the untagged %v", got, untagged)
		}
		if tg := e.tags(keys[13]); tg["owner"] != "y" || tg[objstore.DefaultTagKey] != "clean" {
			t.Errorf("%s: tags %v, want the user's kept and the verdict merged in", keys[13], tg)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		t.Parallel()
		e := newS3Env(t, m, "sweep-interrupted", objstore.Config{})
		keys := e.fill("i/", 20, 2)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// The interruption comes while the sixth object is being read:
		// its scan is cut short, and must leave its job for the next run,
		// not a stored error.
		var cut atomic.Value
		e.scanner.before = func(n int64, req *pipeline.Request) {
			if n == 6 {
				cut.Store(req.Source.Key)
				req.Body = &cancellingReader{r: req.Body, cancel: cancel}
			}
		}
		cfg := e.config("s3://sweep-interrupted/i/")
		cfg.Concurrency = 2
		sum1, err := run(t, ctx, cfg)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Run: error %v, want context.Canceled", err)
		}
		first := e.scanner.reset()
		if len(first) < 4 || sum1.Scanned != int64(len(first)) || sum1.Unfinished == 0 || sum1.Errors != 0 {
			t.Fatalf("interrupted Run: %d scans stored, summary %+v; want at least 4 (one may run beside the cut one), all counted, some unfinished, no errors", len(first), sum1)
		}
		cutKey, _ := cut.Load().(string)
		if slices.Contains(first, cutKey) {
			t.Fatalf("the scan cut short (%s) stored a verdict", cutKey)
		}
		page, err := e.jobs.ListJobs(t.Context(), store.JobFilter{Bucket: e.bucket, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var sawCut bool
		for _, j := range page.Jobs {
			switch {
			case j.Status == scan.Done && slices.Contains(first, j.Source.Key) && (j.Verdict == scan.Clean || j.Verdict == scan.Infected):
			case j.Status == scan.Queued || j.Status == scan.Running:
				sawCut = sawCut || j.Source.Key == cutKey
			default:
				t.Errorf("after the interruption, job %s for %s is %s %s (%s), want a verdict only for finished scans", j.ID, j.Source.Key, j.Status, j.Verdict, j.Error)
			}
		}
		if !sawCut {
			t.Errorf("no queued job for %s, whose scan was cut short", cutKey)
		}

		e.scanner.before = nil
		sum2, err := run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("resumed Run: %v", err)
		}
		second := e.scanner.reset()
		for _, k := range second {
			if slices.Contains(first, k) {
				t.Errorf("%s scanned again after the interruption", k)
			}
		}
		all := append(slices.Clone(first), second...)
		sort.Strings(all)
		sort.Strings(keys)
		if !slices.Equal(all, keys) {
			t.Errorf("scanned over both runs: %v, want each of %v once", all, keys)
		}
		// The infected object, deleted when it was scanned, is no longer
		// listed; every other one scanned before the interruption is
		// resumed.
		wantResumed := int64(len(first))
		if slices.Contains(first, "i/02.txt") {
			wantResumed--
		}
		want(t, "resumed run: resumed", sum2.Resumed, wantResumed)
		want(t, "resumed run: scanned", sum2.Scanned, int64(20-len(first)))
		want(t, "resumed run: errors", sum2.Errors, 0)
		for _, k := range keys {
			if k == "i/02.txt" {
				if e.exists(k) {
					t.Errorf("infected %s still exists", k)
				}
				continue
			}
			if got := e.tags(k)[objstore.DefaultTagKey]; got != "clean" {
				t.Errorf("%s: status tag %q, want clean", k, got)
			}
		}
	})

	t.Run("gone-and-changed", func(t *testing.T) {
		t.Parallel()
		e := newS3Env(t, m, "sweep-gone", objstore.Config{})
		e.fill("g/", 8)
		e.put("g/doomed.txt", []byte("here at listing time"))
		e.put("g/changed.txt", []byte("first content"))
		e.put("g/during.txt", []byte("deleted while it is scanned"))
		// After the read and before the effects, one is deleted: the
		// effects find it gone.
		e.scanner.before = func(_ int64, req *pipeline.Request) {
			if req.Source.Key == "g/during.txt" {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					t.Error(err)
				}
				req.Body = bytes.NewReader(body)
				if err := e.mc.RemoveObject(t.Context(), e.bucket, req.Source.Key, minio.RemoveObjectOptions{}); err != nil {
					t.Error(err)
				}
			}
		}
		cfg := e.config("s3://sweep-gone/g/")
		// Between the listing and the read, one object is deleted and
		// one overwritten.
		cfg.Lister = listerFunc(func(ctx context.Context, bucket, prefix string, fn func(sweep.Object) error) error {
			return e.lister.List(ctx, bucket, prefix, func(o sweep.Object) error {
				switch o.Key {
				case "g/doomed.txt":
					if err := e.mc.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
						return err
					}
				case "g/changed.txt":
					e.put(o.Key, []byte("second content"))
				}
				return fn(o)
			})
		})
		sum, err := run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want(t, "listed", sum.Listed, 11)
		want(t, "gone", sum.Gone, 3)
		want(t, "clean", sum.Clean, 8)
		want(t, "errors", sum.Errors, 0)
		page, err := e.jobs.ListJobs(t.Context(), store.JobFilter{Bucket: e.bucket, Verdict: scan.Skipped})
		if err != nil {
			t.Fatal(err)
		}
		var skipped []string
		for _, j := range page.Jobs {
			if j.Reason != scan.ReasonNotFound || j.Status != scan.Done {
				t.Errorf("job %s for %s: %s %s %s, want done skipped not_found", j.ID, j.Source.Key, j.Status, j.Verdict, j.Reason)
			}
			skipped = append(skipped, j.Source.Key)
		}
		sort.Strings(skipped)
		if !slices.Equal(skipped, []string{"g/changed.txt", "g/doomed.txt", "g/during.txt"}) {
			t.Errorf("skipped jobs for %v, want g/changed.txt, g/doomed.txt and g/during.txt", skipped)
		}

		// The new content of the changed object is new work for the next
		// sweep; the rest is done.
		e.scanner.reset()
		sum, err = run(t, t.Context(), e.config("s3://sweep-gone/g/"))
		if err != nil {
			t.Fatalf("second Run: %v", err)
		}
		want(t, "second run: scanned", sum.Scanned, 1)
		want(t, "second run: resumed", sum.Resumed, 8)
		if got := e.tags("g/changed.txt")[objstore.DefaultTagKey]; got != "clean" {
			t.Errorf("g/changed.txt: status tag %q, want clean", got)
		}
	})

	t.Run("scope-and-quarantine", func(t *testing.T) {
		t.Parallel()
		const b = "sweep-quarantine"
		e := newS3Env(t, m, b, objstore.Config{OnInfected: objstore.OnInfectedQuarantine, QuarantineBucket: b, QuarantinePrefix: "quarantine/"})
		e.put("a.txt", []byte("a"))
		e.put("bad.com", testenv.EICAR)
		e.put("dir/worse.com", testenv.EICAR)
		e.put("notes.skip", []byte("out of scope"))
		e.put("folder/", nil) // a console's folder marker
		cfg := e.config("s3://" + b)
		cfg.Buckets = []config.Bucket{{Name: b, ExcludeSuffixes: []string{".skip"}}}
		sum, err := run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want(t, "listed", sum.Listed, 5)
		want(t, "infected", sum.Infected, 2)
		want(t, "clean", sum.Clean, 1)
		want(t, "out of scope", sum.OutOfScope, 2)
		for _, k := range []string{"quarantine/bad.com", "quarantine/dir/worse.com"} {
			if !e.exists(k) {
				t.Errorf("%s: not quarantined", k)
			}
		}
		// The quarantine area is never swept: scanning it would delete
		// the evidence or quarantine it again.
		e.scanner.reset()
		sum, err = run(t, t.Context(), cfg)
		if err != nil {
			t.Fatalf("second Run: %v", err)
		}
		want(t, "second run: out of scope", sum.OutOfScope, 4)
		want(t, "second run: resumed", sum.Resumed, 1)
		want(t, "second run: pipeline calls", e.scanner.calls.Load(), 0)
		for _, k := range []string{"quarantine/bad.com", "quarantine/dir/worse.com"} {
			if !e.exists(k) {
				t.Errorf("%s: gone after the second sweep", k)
			}
		}
	})

	t.Run("no-such-bucket", func(t *testing.T) {
		t.Parallel()
		e := newS3Env(t, m, "sweep-exists", objstore.Config{})
		_, err := sweep.Run(t.Context(), e.config("s3://sweep-missing/x"))
		if !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Run on a missing bucket: error %v, want objstore.ErrNotFound", err)
		}
	})
}

// cancellingReader ends the sweep's context once it is read from, and
// fails as a read cut short by that would.
type cancellingReader struct {
	r      io.Reader
	cancel context.CancelFunc
	n      int
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n > 0 {
		c.cancel()
		return 0, context.Canceled
	}
	n, err := c.r.Read(p[:min(len(p), 10)])
	c.n += n
	return n, err
}

type listerFunc func(ctx context.Context, bucket, prefix string, fn func(sweep.Object) error) error

func (f listerFunc) List(ctx context.Context, bucket, prefix string, fn func(sweep.Object) error) error {
	return f(ctx, bucket, prefix, fn)
}
