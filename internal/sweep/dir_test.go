package sweep_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/sweep"
	"github.com/lazaret/lazaret/internal/testenv"
)

// writeTree writes files (slash-separated paths under root) and returns
// their absolute paths, sorted.
func writeTree(t *testing.T, root string, files map[string][]byte) []string {
	t.Helper()
	var out []string
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func TestDir(t *testing.T) {
	root := t.TempDir()
	files := writeTree(t, root, map[string][]byte{
		"a.txt":                 []byte("alpha"),
		"sub/b.txt":             []byte("bravo"),
		"sub/deeper/c.bin":      testenv.Deterministic("c", 3000),
		"sub/deeper/eicar.com":  testenv.EICAR,
		"sub/deeper/empty.file": nil,
	})
	// Links are not followed: neither to a file nor to a folder, here
	// both holding EICAR, outside the swept tree.
	outside := t.TempDir()
	writeTree(t, outside, map[string][]byte{"x/eicar.com": testenv.EICAR})
	if err := os.Symlink(filepath.Join(outside, "x", "eicar.com"), filepath.Join(root, "link.com")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(root, "sub", "linkdir")); err != nil {
		t.Fatal(err)
	}

	jobs := openStore(t)
	sc := newScanner(t, jobs)
	tg, err := sweep.ParseTarget(root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sweep.Config{Target: tg, Pipeline: sc, Jobs: jobs, Concurrency: 3}

	sum, err := run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want(t, "listed", sum.Listed, 5)
	want(t, "clean", sum.Clean, 4)
	want(t, "infected", sum.Infected, 1)
	want(t, "bytes", sum.Bytes, int64(len("alpha")+len("bravo")+3000+len(testenv.EICAR)))
	got := sc.reset()
	sort.Strings(got)
	if !slices.Equal(got, files) {
		t.Errorf("scanned %v, want %v", got, files)
	}
	page, err := jobs.ListJobs(t.Context(), store.JobFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		fi, err := os.Stat(j.Source.Path)
		if err != nil {
			t.Fatalf("job %s: %v", j.ID, err)
		}
		if j.Source.Kind != "sweep" || !filepath.IsAbs(j.Source.Path) || j.ID != sweep.FileJobID(j.Source.Path, fi.Size(), fi.ModTime()) {
			t.Errorf("job %s: source %+v, want kind sweep, an absolute path, the file's ID", j.ID, j.Source)
		}
		if len(j.Actions) != 0 {
			t.Errorf("job %s: actions %v, want none for a local file", j.ID, j.Actions)
		}
	}

	// Again: all resumed.
	sum, err = run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	want(t, "second run: resumed", sum.Resumed, 5)
	want(t, "second run: pipeline calls", sc.calls.Load(), 0)

	// A modified file is new work; the others stay done.
	a := filepath.Join(root, "a.txt")
	if err := os.WriteFile(a, []byte("alpha, modified"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(a, later, later); err != nil {
		t.Fatal(err)
	}
	sum, err = run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("third Run: %v", err)
	}
	want(t, "after a change: scanned", sum.Scanned, 1)
	want(t, "after a change: resumed", sum.Resumed, 4)
	if got := sc.reset(); !slices.Equal(got, []string{a}) {
		t.Errorf("after a change: scanned %v, want %v", got, []string{a})
	}
}

// flakyEngine fails while down is set, else finds nothing.
type flakyEngine struct{ down atomic.Bool }

func (e *flakyEngine) Name() string                                { return "flaky" }
func (e *flakyEngine) Type() string                                { return "test" }
func (e *flakyEngine) Version(ctx context.Context) (string, error) { return "flaky 1", nil }
func (e *flakyEngine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	if e.down.Load() {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "engine down")
	}
	return scan.Result{Verdict: scan.Clean}, nil
}

// TestDirErrorsRetried: an error verdict is stored as such, never clean,
// and the next sweep scans the object again.
func TestDirErrorsRetried(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string][]byte{"a": []byte("a"), "b/c": []byte("c")})
	jobs := openStore(t)
	eng := &flakyEngine{}
	eng.down.Store(true)
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: jobs})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sweep.Config{Target: sweep.Target{Dir: root}, Pipeline: p, Jobs: jobs}
	sum, err := run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want(t, "errors", sum.Errors, 2)
	want(t, "clean", sum.Clean, 0)
	page, err := jobs.ListJobs(t.Context(), store.JobFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		if j.Status != scan.Done || j.Verdict != scan.Error || j.Reason != scan.ReasonEngineError {
			t.Errorf("job %s: %s %s %s, want done error engine_error", j.ID, j.Status, j.Verdict, j.Reason)
		}
	}

	eng.down.Store(false)
	sum, err = run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	want(t, "second run: clean", sum.Clean, 2)
	want(t, "second run: resumed", sum.Resumed, 0)
	page, err = jobs.ListJobs(t.Context(), store.JobFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 2 {
		t.Fatalf("jobs: got %d, want the same 2 jobs", len(page.Jobs))
	}
	for _, j := range page.Jobs {
		if j.Status != scan.Done || j.Verdict != scan.Clean {
			t.Errorf("job %s: %s %s, want done clean", j.ID, j.Status, j.Verdict)
		}
	}
}

// TestDirUnreadable: an unreadable file is an error (never clean) and an
// unreadable folder does not stop the sweep.
func TestDirUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	root := t.TempDir()
	writeTree(t, root, map[string][]byte{"ok": []byte("ok"), "secret": []byte("s"), "closed/x": []byte("x")})
	for _, p := range []string{filepath.Join(root, "secret"), filepath.Join(root, "closed")} {
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(p, 0o755) })
	}
	jobs := openStore(t)
	cfg := sweep.Config{Target: sweep.Target{Dir: root}, Pipeline: newScanner(t, jobs), Jobs: jobs}
	sum, err := run(t, t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want(t, "clean", sum.Clean, 1)
	want(t, "errors", sum.Errors, 2)
}

func TestRunRefuses(t *testing.T) {
	jobs := openStore(t)
	sc := newScanner(t, jobs)
	tests := []struct {
		name string
		cfg  sweep.Config
		want string
	}{
		{"no pipeline", sweep.Config{Target: sweep.Target{Dir: "."}, Jobs: jobs}, "pipeline: required"},
		{"no jobs", sweep.Config{Target: sweep.Target{Dir: "."}, Pipeline: sc}, "jobs: required"},
		{"no target", sweep.Config{Pipeline: sc, Jobs: jobs}, "target: empty"},
		{"bucket without lister", sweep.Config{Target: sweep.Target{Bucket: "b"}, Pipeline: sc, Jobs: jobs}, "lister: required"},
		{"untagged-only folder", sweep.Config{Target: sweep.Target{Dir: "."}, Pipeline: sc, Jobs: jobs, UntaggedOnly: true}, "untagged-only"},
		{"missing folder", sweep.Config{Target: sweep.Target{Dir: filepath.Join(t.TempDir(), "nope")}, Pipeline: sc, Jobs: jobs}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sweep.Run(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestDirCancelled: a sweep whose context has ended returns at once with
// its summary and the context's error.
func TestDirCancelled(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string][]byte{"a": []byte("a")})
	jobs := openStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sum, err := run(t, ctx, sweep.Config{Target: sweep.Target{Dir: root}, Pipeline: newScanner(t, jobs), Jobs: jobs})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run: error %v, want context.Canceled", err)
	}
	want(t, "scanned", sum.Scanned, 0)
}
