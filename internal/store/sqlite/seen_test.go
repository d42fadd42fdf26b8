package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/storetest"
)

func TestSeenFilter(t *testing.T) {
	f := newSeen()
	a, b := strings.Repeat("0123456789abcdef", 4), strings.Repeat("fedcba9876543210", 4)
	if f.absent(a) {
		t.Fatal("not loaded yet: must query, never answer absent")
	}
	f.ready.Store(true)
	f.add(a)
	tests := []struct {
		sum    string
		absent bool
	}{
		{a, false},
		{b, true},
		{"", false},                       // not a SHA-256: let the query decide
		{strings.Repeat("zz", 32), false}, // not hex
		{strings.Repeat("0", 63), false},  // too short
		{strings.ToUpper(a[:32]) + a[32:], false}, // hex of another case decodes the same
	}
	for _, tt := range tests {
		if got := f.absent(tt.sum); got != tt.absent {
			t.Errorf("absent(%q) = %v, want %v", tt.sum, got, tt.absent)
		}
	}
}

// TestSeenLoadsOnOpen: a reopened store knows the verdicts already in the
// file, so its lookups find them.
func TestSeenLoadsOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "seen.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	now := time.Now()
	job := storetest.NewJob(scan.StatusNew, now)
	job.SHA256, job.Status, job.Verdict, job.FinishedAt = sum, scan.Done, scan.Clean, &now
	if err := s.SaveJob(ctx, job, scan.StatusNew, storetest.VerdictOf(job, "k")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for !s.seen.ready.Load() {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.LookupVerdict(ctx, sum, "k"); err != nil {
		t.Fatalf("lookup after reopen: %v", err)
	}
	if !s.seen.absent(strings.Repeat("cd", 32)) {
		t.Error("unseen content not absent")
	}
}
