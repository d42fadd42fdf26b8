package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// TestListPlans checks that each ListJobs filter is answered through the
// index meant for it: the partial indexes are used only when the query
// repeats their conditions, and a missed index is a full table scan that
// no functional test would notice.
func TestListPlans(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name  string
		f     store.JobFilter
		index string // "" means the table itself, by id
	}{
		{"all", store.JobFilter{}, ""},
		{"infected", store.JobFilter{Verdict: scan.Infected}, "jobs_flagged_id"},
		{"error", store.JobFilter{Verdict: scan.Error}, "jobs_flagged_id"},
		{"clean", store.JobFilter{Verdict: scan.Clean}, ""},
		{"queued", store.JobFilter{Status: scan.Queued}, "jobs_unfinished_id"},
		{"done", store.JobFilter{Status: scan.Done}, ""},
		{"sha256", store.JobFilter{SHA256: strings.Repeat("ab", 32)}, "jobs_sha256_id"},
		{"bucket", store.JobFilter{Bucket: "uploads"}, "jobs_bucket_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args := listQuery(tt.f, "", 50)
			got := queryPlan(t, s, q, args...)
			if tt.index != "" && !strings.Contains(got, "INDEX "+tt.index) {
				t.Errorf("plan %q does not use %s", got, tt.index)
			}
			if tt.index == "" && strings.Contains(got, "INDEX") {
				t.Errorf("plan %q uses an index; want the table by id", got)
			}
			if strings.Contains(got, "TEMP B-TREE") {
				t.Errorf("plan %q sorts: the order should come from the index", got)
			}
		})
	}
}

// TestLookupPlan: the verdict cache is read through the jobs' sha256
// index, newest first, without a sort.
func TestLookupPlan(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "plans.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := queryPlan(t, s, lookupVerdictSQL, strings.Repeat("ab", 32), "k")
	if !strings.Contains(got, "INDEX jobs_sha256_id") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("plan %q: want jobs_sha256_id in id order", got)
	}
}

// queryPlan returns SQLite's plan for q, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.writeDB.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}
