package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
)

// brokenStore is a real SQLite store whose writes, reads and pings fail
// once broken is set: a store that went away under a running server.
type brokenStore struct {
	store.Store
	broken bool
}

var errDown = errors.New("store is down")

func (b *brokenStore) CreateJob(ctx context.Context, j *scan.Job) error {
	if b.broken {
		return errDown
	}
	return b.Store.CreateJob(ctx, j)
}

func (b *brokenStore) SaveJob(ctx context.Context, j *scan.Job, from scan.Status, v *scan.CachedVerdict) error {
	if b.broken {
		return errDown
	}
	return b.Store.SaveJob(ctx, j, from, v)
}

func (b *brokenStore) GetJob(ctx context.Context, id string) (*scan.Job, error) {
	if b.broken {
		return nil, errDown
	}
	return b.Store.GetJob(ctx, id)
}

func (b *brokenStore) Ping(ctx context.Context) error {
	if b.broken {
		return errDown
	}
	return b.Store.Ping(ctx)
}

func TestStoreUnavailable(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bs := &brokenStore{Store: st}
	engines, err := build.Engines(ctx, config.DefaultEngines(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Engines: engines.List(), Store: bs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Scanner: p, Jobs: bs, Engines: engines})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	post := func() *http.Response {
		resp, err := http.Post(srv.URL+"/v1/scan?name=x", "application/octet-stream", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(); resp.StatusCode != 200 {
		t.Fatalf("store up: got %d", resp.StatusCode)
	}
	bs.broken = true
	if resp := post(); resp.StatusCode != 503 {
		t.Errorf("store down: got %d, want 503", resp.StatusCode)
	}
	resp, _ := http.Get(srv.URL + "/v1/jobs/01M85N2E9B8XQYAXZ5V4VQ24PW")
	if resp.StatusCode != 503 {
		t.Errorf("get job with store down: got %d, want 503", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/readyz")
	if resp.StatusCode != 503 {
		t.Errorf("readyz with store down: got %d, want 503", resp.StatusCode)
	}
	bs.broken = false
	if resp := post(); resp.StatusCode != 200 {
		t.Errorf("store back: got %d, want 200", resp.StatusCode)
	}
}
