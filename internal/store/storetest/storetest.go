// Package storetest is the conformance suite of store.Store: one set of
// tests that every driver runs against its real database (river's
// riverdrivertest is the model). A driver's test calls Run with a function
// that opens a fresh, empty store; behaviour the suite does not pin down
// is not part of the contract.
//
// What the suite holds every driver to, beyond store.Store's comments:
//
//   - A job comes back field for field as it was stored, with nil slices
//     as empty ones (its JSON shows [], never null) and times in UTC, to
//     the millisecond at least. UpdateJob keeps the stored CreatedAt.
//   - CreateJob with a status that is not a legal first status and
//     UpdateJob with an illegal move are ErrConflict; ErrNotFound wins
//     over ErrConflict when there is no such job.
//   - ListJobs returns an empty, non-nil slice when nothing matches, and
//     an error for an unknown verdict or status, a negative limit or a
//     cursor it did not make.
//   - Text from untrusted input is stored whatever it holds: invalid UTF-8
//     and NUL come back as U+FFFD. An ID, hash or key that is not UTF-8
//     text is not found (and refused by CreateJob); as a
//     ListJobs filter it matches nothing.
//   - SaveJob caches only a job's own clean or infected verdict.
//   - Close may be called more than once.
//
// It is imported only by tests.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call and close it at the test's cleanup. Subtests run in parallel,
// each on a store of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"JobRoundTrip", testJobRoundTrip},
		{"JobTimePrecision", testJobTimePrecision},
		{"JobHostileText", testJobHostileText},
		{"GetJobNotFound", testGetJobNotFound},
		{"CreateJobDuplicate", testCreateJobDuplicate},
		{"CreateJobInvalid", testCreateJobInvalid},
		{"UpdateJob", testUpdateJob},
		{"UpdateJobLifecycle", testUpdateJobLifecycle},
		{"UpdateJobConcurrent", testUpdateJobConcurrent},
		{"Transitions", testTransitions},
		{"ListJobsFilters", testListJobsFilters},
		{"ListJobsEmpty", testListJobsEmpty},
		{"ListJobsLimit", testListJobsLimit},
		{"ListJobsMaxLimit", testListJobsMaxLimit},
		{"ListJobsPagination", testListJobsPagination},
		{"ListJobsPaginationWhileWriting", testListJobsPaginationWhileWriting},
		{"ListJobsInvalid", testListJobsInvalid},
		{"VerdictCache", testVerdictCache},
		{"SaveJob", testSaveJob},
		{"Outbox", testOutbox},
		{"SaveJobConcurrent", testSaveJobConcurrent},
		{"VerdictCacheInvalid", testVerdictCacheInvalid},
		{"CanceledContext", testCanceledContext},
		{"Ping", testPing},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, open(t))
		})
	}
}

// ---- helpers ----

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.New(rand.NewSource(time.Now().UnixNano())), 0)
)

// NewID returns a new ULID for a job created at t. IDs made for the same
// millisecond increase monotonically, as a real intake's would.
func NewID(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), idEntropy).String()
}

// base is the creation time the suite's jobs count from: a whole
// millisecond, so that every driver must give it back exactly.
var base = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// NewJob returns a minimal job with the given status, created at at.
func NewJob(status scan.Status, at time.Time) *scan.Job {
	return &scan.Job{
		ID:        NewID(at),
		Status:    status,
		Name:      "sample.bin",
		Size:      68,
		SHA256:    "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
		Source:    scan.Source{Kind: "upload"},
		CreatedAt: at,
	}
}

// normalized is what a store must give back for job: empty slices for nil
// ones and times in UTC.
func normalized(job *scan.Job) *scan.Job {
	j := *job
	if j.Findings == nil {
		j.Findings = []scan.Finding{}
	}
	if j.Engines == nil {
		j.Engines = []scan.EngineRun{}
	}
	if j.Actions == nil {
		j.Actions = []string{}
	}
	j.CreatedAt = j.CreatedAt.UTC()
	if j.FinishedAt != nil {
		f := j.FinishedAt.UTC()
		j.FinishedAt = &f
	}
	return &j
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// checkJob compares jobs by their JSON, the form users see: a nil slice
// (null) or a time outside UTC shows as a difference.
func checkJob(t *testing.T, got, want *scan.Job) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil job, want %s", jsonOf(t, want))
	}
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Errorf("job differs\n got %s\nwant %s", g, w)
	}
	// scan.Job's JSON shows nil lists as [] too; the store must not rely
	// on that.
	if got.Findings == nil || got.Engines == nil || got.Actions == nil {
		t.Errorf("nil lists: findings %v, engines %v, actions %v; want empty slices",
			got.Findings == nil, got.Engines == nil, got.Actions == nil)
	}
	if loc := got.CreatedAt.Location(); loc != time.UTC {
		t.Errorf("created_at location: got %v, want UTC", loc)
	}
	if got.FinishedAt != nil && got.FinishedAt.Location() != time.UTC {
		t.Errorf("finished_at location: got %v, want UTC", got.FinishedAt.Location())
	}
}

func mustCreate(t testing.TB, s store.Store, job *scan.Job) {
	t.Helper()
	if err := s.CreateJob(context.Background(), job); err != nil {
		t.Fatalf("CreateJob(%s, %s): %v", job.ID, job.Status, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) *scan.Job {
	t.Helper()
	job, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: got error %v, want nil", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func ptr[T any](v T) *T { return &v }

func ids(jobs []*scan.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// ---- jobs ----

func fullJob() *scan.Job {
	at := time.Date(2026, 11, 23, 11, 0, 0, 123_000_000, time.FixedZone("CET", 3600))
	return &scan.Job{
		ID:      NewID(at),
		Status:  scan.Done,
		Verdict: scan.Infected,
		Name:    "eicar.com",
		Size:    68,
		SHA256:  "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
		Source: scan.Source{Kind: "s3", Bucket: "uploads", Key: "a/eicar.com", VersionID: "v1",
			ETag: "44d88612fea8a8f36de82e1278abb02f", URL: "s3://uploads/a/eicar.com", Path: "/spool/x",
			Engine: "clamav"},
		Findings: []scan.Finding{
			{Engine: "clamav", Signature: "Eicar-Test-Signature", Path: ""},
			{Engine: "clamav", Signature: "Win.Test.Other", Path: "inner.zip/b.exe"},
		},
		Engines: []scan.EngineRun{
			{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Infected, DurationMS: 3},
			{Name: "yara", Version: "4.2.3", Verdict: scan.Error, Reason: scan.ReasonTimeout,
				Detail: "yara: timeout after 30s", DurationMS: 30000},
			{Name: "apktool", Version: "sandbox/0123456789abcdef", Verdict: scan.Infected, DurationMS: 812,
				Report: &scan.Report{SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Size: 4, ContentType: "application/json"}},
		},
		Cached:     true,
		Actions:    []string{"tagged", "deleted", "notified"},
		Error:      "",
		Attempts:   3,
		CreatedAt:  at,
		FinishedAt: ptr(at.Add(4 * time.Millisecond)),
	}
}

func testJobRoundTrip(t *testing.T, s store.Store) {
	at := base.Add(time.Hour)
	tests := []struct {
		name string
		job  *scan.Job
	}{
		{"queued minimal nil slices", NewJob(scan.Queued, at)},
		{"running empty slices", func() *scan.Job {
			j := NewJob(scan.Running, at)
			j.Findings, j.Engines, j.Actions = []scan.Finding{}, []scan.EngineRun{}, []string{}
			j.Attempts = 1
			return j
		}()},
		{"done infected every field", fullJob()},
		{"done error with reason", func() *scan.Job {
			j := NewJob(scan.Done, at)
			j.Verdict, j.Reason, j.Error = scan.Error, scan.ReasonEngineError, "clamd: instream: connection refused"
			j.Engines = []scan.EngineRun{{Name: "clamav", Verdict: scan.Error, Reason: scan.ReasonEngineError}}
			j.FinishedAt = ptr(at.Add(time.Second))
			return j
		}()},
		{"done skipped too large", func() *scan.Job {
			j := NewJob(scan.Done, at)
			j.Verdict, j.Reason, j.Size = scan.Skipped, scan.ReasonTooLarge, 1<<40
			j.FinishedAt = ptr(at)
			return j
		}()},
		{"odd text", func() *scan.Job {
			j := NewJob(scan.Queued, at)
			j.Name = "ßö 📄 'quo\"ted'\n\t\\%_;--"
			j.Source = scan.Source{Kind: "s3", Bucket: "b'ucket", Key: "dir/a b+c%2F.txt"}
			j.Actions = []string{"", "tagged"}
			return j
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			want := normalized(tt.job)
			mustCreate(t, s, tt.job)
			checkJob(t, mustGet(t, s, tt.job.ID), want)

			// The list path decodes rows too.
			page, err := s.ListJobs(ctx, store.JobFilter{Limit: store.MaxLimit})
			if err != nil {
				t.Fatalf("ListJobs: %v", err)
			}
			i := slices.IndexFunc(page.Jobs, func(j *scan.Job) bool { return j.ID == tt.job.ID })
			if i < 0 {
				t.Fatalf("ListJobs: job %s missing", tt.job.ID)
			}
			checkJob(t, page.Jobs[i], want)
		})
	}
}

func testJobTimePrecision(t *testing.T, s store.Store) {
	zone := time.FixedZone("", -7*3600)
	created := time.Date(2026, 11, 23, 3, 4, 5, 123_456_789, zone)
	finished := created.Add(1500*time.Millisecond + 987_654*time.Nanosecond)
	job := NewJob(scan.Done, created)
	job.Verdict, job.FinishedAt = scan.Clean, &finished
	mustCreate(t, s, job)
	got := mustGet(t, s, job.ID)
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"created_at", got.CreatedAt, created},
		{"finished_at", *got.FinishedAt, finished},
	} {
		if c.got.Location() != time.UTC {
			t.Errorf("%s location: got %v, want UTC", c.name, c.got.Location())
		}
		if d := c.got.Sub(c.want).Abs(); d >= time.Millisecond {
			t.Errorf("%s: got %s, want %s (within 1ms)", c.name, c.got.Format(time.RFC3339Nano), c.want.UTC().Format(time.RFC3339Nano))
		}
	}
}

// testJobHostileText stores a job whose names came from an attacker:
// NUL bytes and invalid UTF-8, which PostgreSQL refuses in text and jsonb.
func testJobHostileText(t *testing.T, s store.Store) {
	ctx := context.Background()
	const bad, clean = "a\x00b\xffc", "a\ufffdb\ufffdc"
	job := NewJob(scan.Done, base)
	job.Name, job.Error, job.Reason = bad, bad, scan.Reason(bad)
	job.Verdict, job.FinishedAt = scan.Infected, ptr(base)
	job.Source = scan.Source{Kind: "s3", Bucket: "uploads", Key: bad, ETag: bad, VersionID: bad, Path: bad, URL: bad, Engine: bad}
	job.Findings = []scan.Finding{{Engine: bad, Signature: bad, Path: bad}}
	job.Engines = []scan.EngineRun{{Name: bad, Version: bad, Verdict: scan.Infected, Reason: scan.Reason(bad), Detail: bad}}
	job.Actions = []string{bad}
	mustCreate(t, s, job)

	want := normalized(job)
	want.Name, want.Error, want.Reason = clean, clean, scan.Reason(clean)
	want.Source = scan.Source{Kind: "s3", Bucket: "uploads", Key: clean, ETag: clean, VersionID: clean, Path: clean, URL: clean, Engine: clean}
	want.Findings = []scan.Finding{{Engine: clean, Signature: clean, Path: clean}}
	want.Engines = []scan.EngineRun{{Name: clean, Version: clean, Verdict: scan.Infected, Reason: scan.Reason(clean), Detail: clean}}
	want.Actions = []string{clean}
	checkJob(t, mustGet(t, s, job.ID), want)
	if job.Name != bad {
		t.Errorf("CreateJob changed the caller's job: name %q", job.Name)
	}

	upd := *job
	upd.Status, upd.Error = scan.Queued, "x\x00"
	if err := s.UpdateJob(ctx, &upd, scan.Done); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	if got := mustGet(t, s, job.ID).Error; got != "x\ufffd" {
		t.Errorf("error after update: got %q, want %q", got, "x\ufffd")
	}

	_, err := s.GetJob(ctx, bad)
	checkErr(t, "GetJob(not UTF-8)", err, store.ErrNotFound)
	err = s.UpdateJob(ctx, &scan.Job{ID: bad, Status: scan.Running}, scan.Queued)
	checkErr(t, "UpdateJob(not UTF-8)", err, store.ErrNotFound)
	if err := s.CreateJob(ctx, &scan.Job{ID: bad, Status: scan.Queued, CreatedAt: base}); err == nil {
		t.Errorf("CreateJob(id not UTF-8): got nil error, want one")
	}
	_, err = s.LookupVerdict(ctx, bad, bad)
	checkErr(t, "LookupVerdict(not UTF-8)", err, store.ErrNotFound)
	for _, f := range []store.JobFilter{{Bucket: bad}, {SHA256: bad}, {Bucket: clean}} {
		page, err := s.ListJobs(ctx, f)
		if err != nil || page.Jobs == nil || len(page.Jobs) != 0 {
			t.Errorf("ListJobs(%+v): got %d jobs, error %v; want none and no error", f, len(page.Jobs), err)
		}
	}

	vj := NewJob(scan.StatusNew, base)
	vj.SHA256, vj.Status, vj.Verdict, vj.FinishedAt = "aa", scan.Done, scan.Infected, ptr(base)
	vj.Findings = []scan.Finding{{Engine: "e", Signature: bad}}
	if err := s.SaveJob(ctx, vj, scan.StatusNew, VerdictOf(vj, "bb")); err != nil {
		t.Fatalf("SaveJob with a verdict: %v", err)
	}
	got, err := s.LookupVerdict(ctx, "aa", "bb")
	if err != nil {
		t.Fatalf("LookupVerdict: %v", err)
	}
	if sig := got.Findings[0].Signature; sig != clean {
		t.Errorf("cached signature: got %q, want %q", sig, clean)
	}
}

func testGetJobNotFound(t *testing.T, s store.Store) {
	_, err := s.GetJob(context.Background(), NewID(base))
	checkErr(t, "GetJob(unknown)", err, store.ErrNotFound)
}

func testCreateJobDuplicate(t *testing.T, s store.Store) {
	first := NewJob(scan.Queued, base)
	mustCreate(t, s, first)
	second := fullJob()
	second.ID = first.ID
	err := s.CreateJob(context.Background(), second)
	checkErr(t, "CreateJob(duplicate)", err, store.ErrConflict)
	checkJob(t, mustGet(t, s, first.ID), normalized(first))
}

func testCreateJobInvalid(t *testing.T, s store.Store) {
	tests := []struct {
		name   string
		modify func(j *scan.Job)
		want   error // nil: any error will do
	}{
		{"no id", func(j *scan.Job) { j.ID = "" }, nil},
		{"zero created_at", func(j *scan.Job) { j.CreatedAt = time.Time{} }, nil},
		{"new status", func(j *scan.Job) { j.Status = scan.StatusNew }, store.ErrConflict},
		{"unknown status", func(j *scan.Job) { j.Status = "paused" }, store.ErrConflict},
		{"unknown verdict", func(j *scan.Job) { j.Verdict = "maybe" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := NewJob(scan.Queued, base)
			tt.modify(job)
			err := s.CreateJob(context.Background(), job)
			if err == nil {
				t.Fatalf("CreateJob: got nil error, want one")
			}
			if tt.want != nil {
				checkErr(t, "CreateJob", err, tt.want)
			}
			if job.ID != "" {
				_, err := s.GetJob(context.Background(), job.ID)
				checkErr(t, "GetJob after refused create", err, store.ErrNotFound)
			}
		})
	}
}

func testUpdateJob(t *testing.T, s store.Store) {
	tests := []struct {
		name    string
		stored  scan.Status // "" means no such job
		to      scan.Status
		from    scan.Status
		wantErr error
	}{
		{"right from", scan.Queued, scan.Running, scan.Queued, nil},
		{"running refresh", scan.Running, scan.Running, scan.Running, nil},
		{"wrong from", scan.Queued, scan.Done, scan.Running, store.ErrConflict},
		{"wrong from same as to", scan.Done, scan.Running, scan.Running, store.ErrConflict},
		{"illegal transition", scan.Queued, scan.Queued, scan.Queued, store.ErrConflict},
		{"illegal done to running", scan.Done, scan.Running, scan.Done, store.ErrConflict},
		{"unknown status", scan.Queued, "paused", scan.Queued, store.ErrConflict},
		{"from new", scan.Queued, scan.Running, scan.StatusNew, store.ErrConflict},
		{"unknown id", "", scan.Running, scan.Queued, store.ErrNotFound},
		{"unknown id illegal transition", "", scan.Running, scan.Done, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			orig := NewJob(tt.stored, base)
			if tt.stored != "" {
				mustCreate(t, s, orig)
			}
			upd := fullJob()
			upd.ID, upd.Status, upd.CreatedAt = orig.ID, tt.to, orig.CreatedAt
			err := s.UpdateJob(ctx, upd, tt.from)
			checkErr(t, fmt.Sprintf("UpdateJob(%s -> %s, stored %s)", tt.from, tt.to, tt.stored), err, tt.wantErr)
			switch {
			case tt.stored == "":
				_, err := s.GetJob(ctx, orig.ID)
				checkErr(t, "GetJob after update of unknown id", err, store.ErrNotFound)
			case tt.wantErr == nil:
				checkJob(t, mustGet(t, s, orig.ID), normalized(upd))
			default:
				checkJob(t, mustGet(t, s, orig.ID), normalized(orig))
			}
		})
	}
}

// testUpdateJobLifecycle walks one job through its life, checking that
// each update replaces every field (a cleared list comes back empty, a
// cleared finished_at nil) and keeps created_at.
func testUpdateJobLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	job := NewJob(scan.Queued, base)
	mustCreate(t, s, job)
	created := job.CreatedAt

	steps := []struct {
		name   string
		from   scan.Status
		modify func(j *scan.Job)
	}{
		{"start", scan.Queued, func(j *scan.Job) { j.Status, j.Attempts = scan.Running, 1 }},
		{"progress", scan.Running, func(j *scan.Job) { j.Actions = []string{"spooled"} }},
		{"finish", scan.Running, func(j *scan.Job) {
			f := fullJob()
			f.ID, f.CreatedAt, f.Attempts = j.ID, j.CreatedAt, 1
			*j = *f
		}},
		{"rescan", scan.Done, func(j *scan.Job) {
			j.Status, j.Verdict, j.Reason, j.Cached = scan.Queued, "", "", false
			j.Findings, j.Engines, j.Actions, j.FinishedAt = nil, nil, nil, nil
			j.Source = scan.Source{Kind: "sweep", Path: "/data"}
		}},
		{"created_at is kept", scan.Queued, func(j *scan.Job) {
			j.Status, j.Attempts = scan.Running, 2
			j.CreatedAt = j.CreatedAt.Add(time.Hour)
		}},
	}
	for _, st := range steps {
		st.modify(job)
		if err := s.UpdateJob(ctx, job, st.from); err != nil {
			t.Fatalf("%s: UpdateJob(%s -> %s): %v", st.name, st.from, job.Status, err)
		}
		want := normalized(job)
		want.CreatedAt = created
		checkJob(t, mustGet(t, s, job.ID), want)
	}
}

// testUpdateJobConcurrent races workers that all saw the job in the same
// status: exactly one of them stores its result, as when a queue
// redelivers a job to several workers.
func testUpdateJobConcurrent(t *testing.T, s store.Store) {
	const workers = 16
	moves := []struct{ from, to scan.Status }{
		{scan.Queued, scan.Running},
		{scan.Running, scan.Done},
		{scan.Done, scan.Queued},
		{scan.Queued, scan.Done},
	}
	for _, m := range moves {
		t.Run(fmt.Sprintf("%s->%s", m.from, m.to), func(t *testing.T) {
			ctx := context.Background()
			job := NewJob(m.from, base)
			mustCreate(t, s, job)
			start := make(chan struct{})
			errs := make([]error, workers)
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					mine := *job
					mine.Status, mine.Error = m.to, fmt.Sprintf("worker %d", i)
					<-start
					errs[i] = s.UpdateJob(ctx, &mine, m.from)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("workers %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("worker %d: got error %v, want %v", i, err, store.ErrConflict)
				}
			}
			if winner < 0 {
				t.Fatalf("no worker won")
			}
			got := mustGet(t, s, job.ID)
			if want := fmt.Sprintf("worker %d", winner); got.Error != want || got.Status != m.to {
				t.Errorf("stored: got (%s, %q), want (%s, %q)", got.Status, got.Error, m.to, want)
			}
		})
	}
}

// testTransitions checks every pair of statuses against scan's table.
func testTransitions(t *testing.T, s store.Store) {
	statuses := []scan.Status{scan.StatusNew, scan.Queued, scan.Running, scan.Done, "paused"}
	for _, to := range statuses {
		t.Run(fmt.Sprintf("new->%q", to), func(t *testing.T) {
			job := NewJob(to, base)
			err := s.CreateJob(context.Background(), job)
			if scan.CanTransition(scan.StatusNew, to) {
				checkErr(t, "CreateJob", err, nil)
			} else {
				checkErr(t, "CreateJob", err, store.ErrConflict)
			}
		})
	}
	for _, from := range []scan.Status{scan.Queued, scan.Running, scan.Done} {
		for _, to := range statuses {
			t.Run(fmt.Sprintf("%s->%q", from, to), func(t *testing.T) {
				job := NewJob(from, base)
				mustCreate(t, s, job)
				next := *job
				next.Status = to
				err := s.UpdateJob(context.Background(), &next, from)
				want := from
				if scan.CanTransition(from, to) {
					checkErr(t, "UpdateJob", err, nil)
					want = to
				} else {
					checkErr(t, "UpdateJob", err, store.ErrConflict)
				}
				if got := mustGet(t, s, job.ID).Status; got != want {
					t.Errorf("stored status: got %q, want %q", got, want)
				}
			})
		}
	}
}

// ---- listing ----

// listFixture stores n jobs one second apart, oldest first, with statuses,
// verdicts, hashes and buckets in rotation, and returns them oldest first.
func listFixture(t *testing.T, s store.Store, n int) []*scan.Job {
	t.Helper()
	hashes := []string{"aa", "bb", "cc"}
	buckets := []string{"", "uploads", "archive", "uploads"}
	verdicts := []scan.Verdict{scan.Clean, scan.Infected, scan.Error, scan.Skipped, scan.Clean}
	jobs := make([]*scan.Job, n)
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		job := NewJob(scan.Queued, at)
		job.SHA256 = hashes[i%len(hashes)]
		if b := buckets[i%len(buckets)]; b != "" {
			job.Source = scan.Source{Kind: "s3", Bucket: b, Key: fmt.Sprintf("k%d", i)}
		}
		switch i % 3 {
		case 1:
			job.Status = scan.Running
		case 2:
			job.Status = scan.Done
			job.Verdict = verdicts[i%len(verdicts)]
			job.FinishedAt = ptr(at.Add(time.Millisecond))
		}
		mustCreate(t, s, job)
		jobs[i] = job
	}
	return jobs
}

// newestFirst returns the IDs of the jobs keep accepts, newest first.
func newestFirst(jobs []*scan.Job, keep func(*scan.Job) bool) []string {
	out := []string{}
	for i := len(jobs) - 1; i >= 0; i-- {
		if keep(jobs[i]) {
			out = append(out, jobs[i].ID)
		}
	}
	return out
}

func testListJobsFilters(t *testing.T, s store.Store) {
	jobs := listFixture(t, s, 30)
	since := base.Add(17 * time.Second)
	tests := []struct {
		name   string
		filter store.JobFilter
		keep   func(*scan.Job) bool
	}{
		{"all", store.JobFilter{}, func(*scan.Job) bool { return true }},
		{"verdict", store.JobFilter{Verdict: scan.Infected}, func(j *scan.Job) bool { return j.Verdict == scan.Infected }},
		{"verdict clean", store.JobFilter{Verdict: scan.Clean}, func(j *scan.Job) bool { return j.Verdict == scan.Clean }},
		{"status", store.JobFilter{Status: scan.Running}, func(j *scan.Job) bool { return j.Status == scan.Running }},
		{"sha256", store.JobFilter{SHA256: "bb"}, func(j *scan.Job) bool { return j.SHA256 == "bb" }},
		{"bucket", store.JobFilter{Bucket: "uploads"}, func(j *scan.Job) bool { return j.Source.Bucket == "uploads" }},
		{"since", store.JobFilter{Since: since}, func(j *scan.Job) bool { return !j.CreatedAt.Before(since) }},
		{"since in another zone", store.JobFilter{Since: since.In(time.FixedZone("", 5*3600))},
			func(j *scan.Job) bool { return !j.CreatedAt.Before(since) }},
		{"since between jobs", store.JobFilter{Since: since.Add(-time.Millisecond)},
			func(j *scan.Job) bool { return !j.CreatedAt.Before(since) }},
		{"combined", store.JobFilter{Status: scan.Done, Bucket: "archive", SHA256: "cc"}, func(j *scan.Job) bool {
			return j.Status == scan.Done && j.Source.Bucket == "archive" && j.SHA256 == "cc"
		}},
		{"no match", store.JobFilter{SHA256: "dd"}, func(*scan.Job) bool { return false }},
		{"since future", store.JobFilter{Since: base.Add(time.Hour)}, func(*scan.Job) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.filter
			f.Limit = store.MaxLimit
			page, err := s.ListJobs(context.Background(), f)
			if err != nil {
				t.Fatalf("ListJobs: %v", err)
			}
			if got, want := ids(page.Jobs), newestFirst(jobs, tt.keep); !slices.Equal(got, want) {
				t.Errorf("ids: got %v, want %v", got, want)
			}
			if page.NextCursor != "" {
				t.Errorf("NextCursor: got %q, want none", page.NextCursor)
			}
		})
	}
}

func testListJobsEmpty(t *testing.T, s store.Store) {
	page, err := s.ListJobs(context.Background(), store.JobFilter{})
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	if page.Jobs == nil || len(page.Jobs) != 0 || page.NextCursor != "" {
		t.Errorf("got %#v, want empty non-nil Jobs and no cursor", page)
	}
}

func testListJobsLimit(t *testing.T, s store.Store) {
	jobs := listFixture(t, s, store.DefaultLimit+5)
	all := newestFirst(jobs, func(*scan.Job) bool { return true })
	tests := []struct {
		limit, want int
	}{
		{0, store.DefaultLimit},
		{1, 1},
		{7, 7},
		{len(jobs), len(jobs)},
		{len(jobs) + 1, len(jobs)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			page, err := s.ListJobs(context.Background(), store.JobFilter{Limit: tt.limit})
			if err != nil {
				t.Fatalf("ListJobs: %v", err)
			}
			if got := ids(page.Jobs); !slices.Equal(got, all[:tt.want]) {
				t.Errorf("ids: got %d %v, want %d %v", len(got), got, tt.want, all[:tt.want])
			}
			if more := tt.want < len(jobs); (page.NextCursor != "") != more {
				t.Errorf("NextCursor: got %q, want one: %v", page.NextCursor, more)
			}
		})
	}
}

func testListJobsMaxLimit(t *testing.T, s store.Store) {
	n := store.MaxLimit + 1
	const writers = 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				mustCreate(t, s, NewJob(scan.Queued, base.Add(time.Duration(i)*time.Millisecond)))
			}
		})
	}
	wg.Wait()
	page, err := s.ListJobs(context.Background(), store.JobFilter{Limit: store.MaxLimit * 2})
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	if len(page.Jobs) != store.MaxLimit || page.NextCursor == "" {
		t.Errorf("got %d jobs and cursor %q, want %d and a cursor", len(page.Jobs), page.NextCursor, store.MaxLimit)
	}
}

// walk lists every page of f and returns the IDs in order and the number
// of pages. between runs after each page.
func walk(t *testing.T, s store.Store, f store.JobFilter, between func(page int)) (got []string, pages int) {
	t.Helper()
	for {
		page, err := s.ListJobs(context.Background(), f)
		if err != nil {
			t.Fatalf("ListJobs(page %d): %v", pages+1, err)
		}
		pages++
		got = append(got, ids(page.Jobs)...)
		if page.NextCursor == "" {
			return got, pages
		}
		if len(page.Jobs) == 0 {
			t.Fatalf("page %d: empty page with a cursor", pages)
		}
		if pages > 1000 {
			t.Fatalf("more than 1000 pages: cursor does not advance")
		}
		if between != nil {
			between(pages)
		}
		f.Cursor = page.NextCursor
	}
}

func testListJobsPagination(t *testing.T, s store.Store) {
	jobs := listFixture(t, s, 23)
	all := func(*scan.Job) bool { return true }
	tests := []struct {
		name      string
		filter    store.JobFilter
		keep      func(*scan.Job) bool
		wantPages int
	}{
		{"by 5", store.JobFilter{Limit: 5}, all, 5},
		{"by 1", store.JobFilter{Limit: 1}, all, 23},
		{"exact multiple", store.JobFilter{Limit: 23}, all, 1},
		{"status filter", store.JobFilter{Limit: 2, Status: scan.Done},
			func(j *scan.Job) bool { return j.Status == scan.Done }, 4}, // 7 done jobs
		{"bucket filter", store.JobFilter{Limit: 3, Bucket: "uploads"},
			func(j *scan.Job) bool { return j.Source.Bucket == "uploads" }, 4}, // 11 jobs
		{"exact multiple with filter", store.JobFilter{Limit: 4, SHA256: "bb"},
			func(j *scan.Job) bool { return j.SHA256 == "bb" }, 2}, // 8 jobs
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := walk(t, s, tt.filter, nil)
			if want := newestFirst(jobs, tt.keep); !slices.Equal(got, want) {
				t.Errorf("ids: got %v, want %v", got, want)
			}
			if pages != tt.wantPages {
				t.Errorf("pages: got %d, want %d", pages, tt.wantPages)
			}
		})
	}
}

// testListJobsPaginationWhileWriting checks that jobs created during a
// walk neither repeat nor hide the jobs listed before they came.
func testListJobsPaginationWhileWriting(t *testing.T, s store.Store) {
	jobs := listFixture(t, s, 12)
	got, _ := walk(t, s, store.JobFilter{Limit: 5}, func(int) {
		mustCreate(t, s, NewJob(scan.Queued, base.Add(time.Hour)))
	})
	if want := newestFirst(jobs, func(*scan.Job) bool { return true }); !slices.Equal(got, want) {
		t.Errorf("ids: got %v, want %v", got, want)
	}
}

func testListJobsInvalid(t *testing.T, s store.Store) {
	listFixture(t, s, 3)
	page, err := s.ListJobs(context.Background(), store.JobFilter{Limit: 1})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("ListJobs: got cursor %q, error %v; want a cursor", page.NextCursor, err)
	}
	tests := []struct {
		name   string
		filter store.JobFilter
	}{
		{"garbage cursor", store.JobFilter{Cursor: "not a cursor!"}},
		{"base64 not a cursor", store.JobFilter{Cursor: "Zm9vYmFy"}},
		{"truncated cursor", store.JobFilter{Cursor: page.NextCursor[:len(page.NextCursor)/2]}},
		{"cursor with junk", store.JobFilter{Cursor: page.NextCursor + "%%"}},
		{"unknown verdict", store.JobFilter{Verdict: "maybe"}},
		{"unknown status", store.JobFilter{Status: "paused"}},
		{"negative limit", store.JobFilter{Limit: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.ListJobs(context.Background(), tt.filter)
			if err == nil {
				t.Fatalf("ListJobs(%+v): got %d jobs and no error, want an error", tt.filter, len(page.Jobs))
			}
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("ListJobs: got %v, want store.ErrInvalid", err)
			}
		})
	}
}

// ---- verdict cache ----

func testVerdictCache(t *testing.T, s store.Store) {
	ctx := context.Background()
	sha := "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	key1 := scan.EnginesKey([]scan.EngineVersion{{Name: "clamav", Version: "ClamAV 1.4.6/27480"}})
	key2 := scan.EnginesKey([]scan.EngineVersion{{Name: "clamav", Version: "ClamAV 1.4.6/27481"}})

	_, err := s.LookupVerdict(ctx, sha, key1)
	checkErr(t, "LookupVerdict(empty cache)", err, store.ErrNotFound)

	// save stores a new done job for sha with verdict, at minute m, and
	// caches its verdict under key.
	save := func(m int, verdict scan.Verdict, key string, findings []scan.Finding, cached bool) (*scan.Job, *scan.CachedVerdict) {
		t.Helper()
		at := base.Add(time.Duration(m) * time.Minute).In(time.FixedZone("", 3600))
		job := NewJob(scan.StatusNew, at)
		job.SHA256, job.Status, job.Verdict, job.FinishedAt, job.Cached = sha, scan.Done, verdict, &at, cached
		job.Findings = findings
		job.Engines = []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: verdict, DurationMS: 2}}
		v := VerdictOf(job, key)
		if err := s.SaveJob(ctx, job, scan.StatusNew, v); err != nil {
			t.Fatalf("SaveJob with verdict %s under %s: %v", verdict, key, err)
		}
		return job, v
	}
	lookup := func(name, sha, key string, want *scan.CachedVerdict) *scan.CachedVerdict {
		t.Helper()
		got, err := s.LookupVerdict(ctx, sha, key)
		if want == nil {
			checkErr(t, name, err, store.ErrNotFound)
			return nil
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w := *want
		w.CreatedAt = w.CreatedAt.UTC()
		if w.Findings == nil {
			w.Findings = []scan.Finding{}
		}
		if w.Engines == nil {
			w.Engines = []scan.EngineRun{}
		}
		if g, w := jsonOf(t, got), jsonOf(t, w); g != w {
			t.Errorf("%s\n got %s\nwant %s", name, g, w)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("%s: created_at location: got %v, want UTC", name, got.CreatedAt.Location())
		}
		return got
	}
	eicar := []scan.Finding{{Engine: "clamav", Signature: "Eicar-Test-Signature"}}
	_, v1 := save(1, scan.Infected, key1, eicar, false)
	lookup("hit", sha, key1, v1)
	lookup("other engines key", sha, key2, nil)
	lookup("other sha256", "00"+sha[2:], key1, nil)

	// Same content under new signatures: a second entry beside the first.
	_, v2 := save(2, scan.Clean, key2, nil, false)
	lookup("second key", sha, key2, v2)
	lookup("first key kept", sha, key1, v1)

	// A newer verdict under the same key replaces the older.
	_, v3 := save(3, scan.Clean, key1, nil, false)
	lookup("replaced", sha, key1, v3)

	// A job answered from the cache keeps the entry: the same verdict,
	// held by that job or by the one that made it.
	hit, _ := save(4, scan.Clean, key1, nil, true)
	got, err := s.LookupVerdict(ctx, sha, key1)
	if err != nil || got.Verdict != scan.Clean || (got.JobID != v3.JobID && got.JobID != hit.ID) {
		t.Errorf("after a cache hit: got %+v, %v; want clean from %s or %s", got, err, v3.JobID, hit.ID)
	}

	// A job that caches nothing (an error) does not hide the entry.
	failed := NewJob(scan.StatusNew, base.Add(5*time.Minute))
	failed.Status, failed.Verdict, failed.Reason, failed.FinishedAt = scan.Done, scan.Error, scan.ReasonEngineError, ptr(base.Add(5*time.Minute))
	if err := s.SaveJob(ctx, failed, scan.StatusNew, nil); err != nil {
		t.Fatalf("SaveJob(error verdict): %v", err)
	}
	if got, err := s.LookupVerdict(ctx, sha, key1); err != nil || got.Verdict != scan.Clean {
		t.Errorf("after an error job: got %+v, %v; want the clean entry", got, err)
	}

	// A stored job that is rescanned caches its new verdict.
	q := NewJob(scan.Queued, base.Add(6*time.Minute))
	q.SHA256 = "ee" + sha[2:]
	mustCreate(t, s, q)
	q.Status, q.Verdict, q.Findings, q.FinishedAt = scan.Done, scan.Infected, eicar, ptr(base.Add(7*time.Minute))
	if err := s.SaveJob(ctx, q, scan.Queued, VerdictOf(q, key2)); err != nil {
		t.Fatalf("SaveJob(update): %v", err)
	}
	lookup("cached by an update", q.SHA256, key2, VerdictOf(q, key2))
}

// VerdictOf returns job's verdict as SaveJob caches it under key: its
// content, verdict, findings and engines, the job's ID, and its finish
// time as the time the verdict was made.
func VerdictOf(job *scan.Job, key string) *scan.CachedVerdict {
	v := &scan.CachedVerdict{SHA256: job.SHA256, EnginesKey: key, Verdict: job.Verdict,
		Findings: job.Findings, Engines: job.Engines, JobID: job.ID}
	if job.FinishedAt != nil {
		v.CreatedAt = *job.FinishedAt
	}
	return v
}

func testVerdictCacheInvalid(t *testing.T, s store.Store) {
	key := scan.EnginesKey([]scan.EngineVersion{{Name: "clamav", Version: "1"}})
	tests := []struct {
		name    string
		verdict scan.Verdict
		edit    func(v *scan.CachedVerdict)
	}{
		{"error", scan.Error, nil},
		{"skipped", scan.Skipped, nil},
		{"no verdict", "", nil},
		{"no sha256", scan.Clean, func(v *scan.CachedVerdict) { v.SHA256 = "" }},
		{"no engines key", scan.Clean, func(v *scan.CachedVerdict) { v.EnginesKey = "" }},
		{"another sample's", scan.Clean, func(v *scan.CachedVerdict) { v.SHA256 = "bb" }},
		{"another verdict", scan.Clean, func(v *scan.CachedVerdict) { v.Verdict = scan.Infected }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			job := NewJob(scan.StatusNew, base)
			job.SHA256, job.Status, job.Verdict, job.FinishedAt = "aa", scan.Done, tt.verdict, ptr(base)
			if tt.verdict == scan.Error || tt.verdict == scan.Skipped {
				job.Reason = scan.ReasonEngineError
			}
			v := VerdictOf(job, key)
			if tt.edit != nil {
				tt.edit(v)
			}
			if err := s.SaveJob(ctx, job, scan.StatusNew, v); err == nil {
				t.Fatalf("SaveJob(%+v): got nil error, want one", v)
			}
			_, err := s.LookupVerdict(ctx, v.SHA256, v.EnginesKey)
			checkErr(t, "LookupVerdict after a refused save", err, store.ErrNotFound)
			_, err = s.GetJob(ctx, job.ID)
			checkErr(t, "GetJob after a refused save", err, store.ErrNotFound)
		})
	}
}

// ---- the rest ----

func testCanceledContext(t *testing.T, s store.Store) {
	job := NewJob(scan.Queued, base)
	mustCreate(t, s, job)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"GetJob", func() error { _, err := s.GetJob(ctx, job.ID); return err }},
		{"CreateJob", func() error { return s.CreateJob(ctx, NewJob(scan.Queued, base)) }},
		{"UpdateJob", func() error {
			j := *job
			j.Status = scan.Running
			return s.UpdateJob(ctx, &j, scan.Queued)
		}},
		{"ListJobs", func() error { _, err := s.ListJobs(ctx, store.JobFilter{}); return err }},
		{"LookupVerdict", func() error { _, err := s.LookupVerdict(ctx, "aa", "bb"); return err }},
		{"SaveJob", func() error {
			j := NewJob(scan.StatusNew, base)
			j.Status, j.Verdict, j.FinishedAt = scan.Done, scan.Clean, ptr(base)
			return s.SaveJob(ctx, j, scan.StatusNew, VerdictOf(j, "bb"))
		}},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got %v, want %v", c.name, err, context.Canceled)
		}
	}
	if got := mustGet(t, s, job.ID).Status; got != scan.Queued {
		t.Errorf("status after a canceled update: got %s, want %s", got, scan.Queued)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testClose(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping after Close: got nil error, want one")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testSaveJob: a finished job and its cached verdict are stored together,
// or not at all.
func testSaveJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	cv := func(job *scan.Job, key string) *scan.CachedVerdict {
		return &scan.CachedVerdict{SHA256: job.SHA256, EnginesKey: key, Verdict: scan.Infected,
			Findings: []scan.Finding{{Engine: "e", Signature: "Sig"}}, JobID: job.ID, CreatedAt: now}
	}
	done := func(j *scan.Job) *scan.Job {
		j.Status, j.Verdict, j.FinishedAt = scan.Done, scan.Infected, &now
		j.Findings = []scan.Finding{{Engine: "e", Signature: "Sig"}}
		return j
	}

	// New job with a verdict.
	j1 := done(NewJob(scan.StatusNew, now))
	if err := s.SaveJob(ctx, j1, scan.StatusNew, cv(j1, "k1")); err != nil {
		t.Fatalf("SaveJob(new): %v", err)
	}
	if got, err := s.GetJob(ctx, j1.ID); err != nil || got.Verdict != scan.Infected || got.Status != scan.Done {
		t.Errorf("GetJob: got %+v, %v", got, err)
	}
	if _, err := s.LookupVerdict(ctx, j1.SHA256, "k1"); err != nil {
		t.Errorf("LookupVerdict after SaveJob: %v", err)
	}
	// Update of a running job, without a verdict to cache.
	j2 := NewJob(scan.Running, now)
	if err := s.CreateJob(ctx, j2); err != nil {
		t.Fatal(err)
	}
	j2 = done(j2)
	if err := s.SaveJob(ctx, j2, scan.Running, nil); err != nil {
		t.Fatalf("SaveJob(update): %v", err)
	}
	// A failed compare-and-set stores neither the job nor the verdict.
	j2.Error = "second writer"
	err := s.SaveJob(ctx, j2, scan.Running, cv(j2, "k2"))
	checkErr(t, "SaveJob(stale from)", err, store.ErrConflict)
	if _, err := s.LookupVerdict(ctx, j2.SHA256, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a conflicting SaveJob stored its verdict: %v", err)
	}
	if got, _ := s.GetJob(ctx, j2.ID); got.Error != "" {
		t.Errorf("a conflicting SaveJob changed the job: %q", got.Error)
	}
	// A duplicate new job: conflict, nothing stored.
	dup := *j1
	err = s.SaveJob(ctx, &dup, scan.StatusNew, cv(&dup, "k3"))
	checkErr(t, "SaveJob(duplicate)", err, store.ErrConflict)
	if _, err := s.LookupVerdict(ctx, dup.SHA256, "k3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a duplicate SaveJob stored its verdict: %v", err)
	}
	// Unknown job.
	ghost := done(NewJob(scan.Running, now))
	checkErr(t, "SaveJob(unknown)", s.SaveJob(ctx, ghost, scan.Running, nil), store.ErrNotFound)
}

// testSaveJobConcurrent: many writers at once (the group commit of an
// embedded store) each get their own outcome.
func testSaveJobConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	jobs := make([]*scan.Job, n)
	for i := range n {
		j := NewJob(scan.StatusNew, now)
		j.Status, j.Verdict, j.FinishedAt = scan.Done, scan.Clean, &now
		jobs[i] = j
	}
	// Every third job is saved twice: exactly one of the two must win.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.SaveJob(ctx, jobs[i], scan.StatusNew, nil)
		}()
	}
	dupErrs := make([]error, n)
	for i := 0; i < n; i += 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := *jobs[i]
			dupErrs[i] = s.SaveJob(ctx, &d, scan.StatusNew, nil)
		}()
	}
	wg.Wait()
	for i := range n {
		ok := errs[i] == nil
		if i%3 == 0 {
			okDup := dupErrs[i] == nil
			if ok == okDup {
				t.Errorf("job %d saved twice at once: got %v and %v, want exactly one success", i, errs[i], dupErrs[i])
			}
			continue
		}
		if !ok {
			t.Errorf("job %d: %v", i, errs[i])
		}
		if _, err := s.GetJob(ctx, jobs[i].ID); err != nil {
			t.Errorf("job %d not stored: %v", i, err)
		}
	}
}

// testOutbox: deliveries are added once, come due in order, record their
// attempts and are counted and listed by state.
func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	add := func(id string, next time.Time) {
		t.Helper()
		if err := s.AddDelivery(ctx, &store.Delivery{ID: id, Target: "0 https://h/x", Event: "scan.completed",
			Body: []byte(`{"a":1}`), NextAt: next, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	add("d1", now.Add(-time.Minute))
	add("d2", now.Add(-2*time.Minute))
	add("d3", now.Add(time.Hour)) // not due yet
	// Adding again changes nothing (a retried job notifies once).
	if err := s.AddDelivery(ctx, &store.Delivery{ID: "d1", Target: "other", Event: "x", Body: []byte("changed"), NextAt: now}); err != nil {
		t.Fatal(err)
	}
	due, err := s.ClaimDeliveries(ctx, now, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(due, func(a, b *store.Delivery) int { return strings.Compare(a.ID, b.ID) })
	if len(due) != 2 || due[0].ID != "d1" || due[1].ID != "d2" {
		t.Fatalf("due: got %v, want d1 and d2", deliveryIDs(due))
	}
	if string(due[0].Body) != `{"a":1}` || due[0].Target != "0 https://h/x" || due[0].State != store.DeliveryPending {
		t.Errorf("d1 came back as %+v", due[0])
	}
	// Claimed: another dispatcher gets nothing until the lease ends.
	if again, _ := s.ClaimDeliveries(ctx, now, time.Minute, 10); len(again) != 0 {
		t.Errorf("claimed twice: %v", deliveryIDs(again))
	}
	// d2 fails once and is put off; d1 is delivered.
	d1, d2 := due[0], due[1]
	d2.Attempts, d2.NextAt, d2.LastError = 1, now.Add(time.Minute), "503"
	if err := s.UpdateDelivery(ctx, d2); err != nil {
		t.Fatal(err)
	}
	d1.State, d1.Attempts = store.DeliveryDelivered, 1
	if err := s.UpdateDelivery(ctx, d1); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.ClaimDeliveries(ctx, now, time.Minute, 10); len(due) != 0 {
		t.Errorf("due after the attempts: %v, want none", deliveryIDs(due))
	}
	later, _ := s.ClaimDeliveries(ctx, now.Add(2*time.Minute), time.Minute, 10)
	if len(later) != 1 || later[0].ID != "d2" || later[0].Attempts != 1 || later[0].LastError != "503" {
		t.Errorf("due later: %v", deliveryIDs(later))
	}
	d2.State = store.DeliveryFailed
	if err := s.UpdateDelivery(ctx, d2); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountDeliveries(ctx)
	if err != nil || counts[store.DeliveryPending] != 1 || counts[store.DeliveryDelivered] != 1 || counts[store.DeliveryFailed] != 1 {
		t.Errorf("counts %v, %v", counts, err)
	}
	failed, err := s.ListDeliveries(ctx, store.DeliveryFailed, 10)
	if err != nil || len(failed) != 1 || failed[0].ID != "d2" {
		t.Errorf("failed: %v, %v", deliveryIDs(failed), err)
	}
	checkErr(t, "UpdateDelivery(unknown)", s.UpdateDelivery(ctx, &store.Delivery{ID: "nope", State: store.DeliveryFailed, NextAt: now}), store.ErrNotFound)
}

func deliveryIDs(ds []*store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
