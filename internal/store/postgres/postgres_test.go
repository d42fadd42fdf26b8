package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/postgres"
	"github.com/lazaret/lazaret/internal/store/storetest"
	"github.com/lazaret/lazaret/internal/testenv"
)

// schemaURL creates a schema of its own for one test, dropped at cleanup,
// and returns a URL whose search_path selects it: tests run in parallel
// and again and again against one server without seeing each other.
func schemaURL(tb testing.TB) string {
	tb.Helper()
	base := testenv.Postgres(tb)
	ctx := context.Background()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "lz_test_" + hex.EncodeToString(b)

	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", testenv.EnvPostgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s must be a URL: %v", testenv.EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openURL(tb testing.TB, u string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), u, nil)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openStore(tb testing.TB) store.Store {
	tb.Helper()
	return openURL(tb, schemaURL(tb))
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, openStore)
}

// TestConcurrentOpen starts several stores on one empty schema at once, as
// workers starting together do: the migration runs once, under its lock,
// and every store opens.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	u := schemaURL(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), u, nil)
			if err == nil {
				err = s.Ping(context.Background())
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", applied)
	}
	var schema string
	if err := conn.QueryRow(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'
		AND table_schema = current_schema()`).Scan(&schema); err != nil {
		t.Errorf("jobs table not in the URL's schema: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url  string
		want, hide string
	}{
		{"bad url", "postgres://lazaret:s3cret@127.0.0.1:notaport/db", "invalid connection string", "s3cret"},
		{"one connection", "postgres://lazaret:s3cret@127.0.0.1:1/db?pool_max_conns=1", "pool_max_conns", "s3cret"},
		{"refused", "postgres://lazaret:s3cret@127.0.0.1:1/db?connect_timeout=2", "postgres: open", "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, tt.url, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got nil error, want one")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: got %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.hide) {
				t.Errorf("Open: error %q shows the password", err)
			}
		})
	}
}
