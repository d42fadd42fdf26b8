package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/store/storetest"
)

func openAt(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func openFile(tb testing.TB) store.Store {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "lazaret.db"))
}

func openMemory(tb testing.TB) store.Store {
	tb.Helper()
	return openAt(tb, sqlite.MemoryPath)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) store.Store{"file": openFile, "memory": openMemory} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
		})
	}
}

func BenchmarkStore(b *testing.B) {
	b.Run("file", func(b *testing.B) { storetest.Bench(b, openFile) })
	b.Run("memory", func(b *testing.B) { storetest.Bench(b, openMemory) })
}

// TestPragmas checks the settings the package promises on the file.
func TestPragmas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lazaret.db")
	openAt(t, path)
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode: got %q, want wal", mode)
	}
}

// TestReopen checks that data outlives the Store and that migrating an
// up-to-date file changes nothing.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lazaret.db")
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := storetest.NewJob(scan.Queued, time.Now())
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path)
	got, err := s2.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("GetJob after reopen: %v", err)
	}
	if got.ID != job.ID {
		t.Errorf("got job %s, want %s", got.ID, job.ID)
	}
}

// TestTwoStoresOneFile stands for two processes on one file (serve and a
// rescan): their writers contend for SQLite's lock and must wait, not
// fail with SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lazaret.db")
	stores := []*sqlite.Store{openAt(t, path), openAt(t, path)}
	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		s := stores[w%2]
		wg.Go(func() {
			for range perWorker {
				job := storetest.NewJob(scan.Running, time.Now())
				if err := s.CreateJob(ctx, job); err != nil {
					errs <- err
					continue
				}
				job.Status, job.Verdict = scan.Done, scan.Clean
				if err := s.UpdateJob(ctx, job, scan.Running); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("write: %v", err)
	}
	page, err := stores[0].ListJobs(ctx, store.JobFilter{Status: scan.Done, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(page.Jobs), workers*perWorker; got != want {
		t.Errorf("done jobs: got %d, want %d", got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"empty path", "", "empty path"},
		{"question mark", filepath.Join(dir, "a?b.db"), "must not contain"},
		{"missing folder", filepath.Join(dir, "no", "such", "dir", "x.db"), "sqlite: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlite.Open(context.Background(), tt.path, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got nil error, want one", tt.path)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%q): got %v, want it to mention %q", tt.path, err, tt.want)
			}
		})
	}
}

func ExampleOpen() {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.MemoryPath, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	_, err = s.GetJob(ctx, "01JD6Q3K8M4Z7X2V9B1N5T0RCE")
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output: true
}
