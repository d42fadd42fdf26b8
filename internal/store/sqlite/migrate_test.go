package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestMigrateVerdictsIntoJobs: a database written before the verdict
// cache moved into the jobs table keeps its cached verdicts, and going
// back down restores the verdicts table.
func TestMigrateVerdictsIntoJobs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	provider := func(db *sql.DB) *goose.Provider {
		fsys, err := fs.Sub(migrations, "migrations")
		if err != nil {
			t.Fatal(err)
		}
		p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := provider(db).UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	sum, other := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for _, q := range []string{
		`INSERT INTO jobs (id, status, verdict, sha256, engines, created_at, finished_at, updated_at)
			VALUES ('01JOB0000000000000000000A1', 'done', 'infected', '` + sum + `', '[{"name":"clamav","version":"1","verdict":"infected","duration_ms":1}]', 1, 2, 2)`,
		`INSERT INTO verdicts (sha256, engines_key, verdict, engines, job_id, created_at)
			VALUES ('` + sum + `', 'k1', 'infected', '[]', '01JOB0000000000000000000A1', 2)`,
		// A verdict whose job is gone is dropped: nothing holds it.
		`INSERT INTO verdicts (sha256, engines_key, verdict, job_id, created_at)
			VALUES ('` + other + `', 'k1', 'clean', '01JOB0000000000000000000B1', 3)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.LookupVerdict(ctx, sum, "k1")
	if err != nil || v.JobID != "01JOB0000000000000000000A1" || v.Verdict != "infected" || len(v.Engines) != 1 {
		t.Errorf("migrated verdict: got %+v, %v", v, err)
	}
	if _, err := s.LookupVerdict(ctx, sum, "k2"); err == nil {
		t.Error("another engines key found a verdict")
	}
	s.Close()

	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := provider(db).DownTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var job string
	if err := db.QueryRow(`SELECT job_id FROM verdicts WHERE sha256 = ? AND engines_key = 'k1'`, sum).Scan(&job); err != nil || job != "01JOB0000000000000000000A1" {
		t.Errorf("verdicts after down: got %q, %v", job, err)
	}
}
