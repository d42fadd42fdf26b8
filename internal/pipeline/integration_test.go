package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lazaret/lazaret/internal/engine/builtin"
	"github.com/lazaret/lazaret/internal/engine/clamd"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
)

// counting counts a real engine's scans.
type counting struct {
	scan.Engine
	calls atomic.Int32
}

func (c *counting) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	c.calls.Add(1)
	return c.Engine.Scan(ctx, s)
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lazaret.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCacheHitMakesOneEngineCall: the same sample twice (same SHA-256,
// same engine versions) makes exactly one engine call, with a real engine
// and a real store.
func TestCacheHitMakesOneEngineCall(t *testing.T) {
	sigs := t.TempDir()
	if err := testenv.WriteSignatures(sigs); err != nil {
		t.Fatal(err)
	}
	b, err := builtin.New(builtin.Config{Name: "blocklist", SignaturesDir: sigs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := &counting{Engine: b}
	st := openStore(t)
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []bool{false, true, true} {
		job, err := p.Scan(ctx, pipeline.Request{Name: "marker.bin", Body: bytes.NewReader(testenv.NDBSample()), Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		if job.Verdict != scan.Infected || job.FirstSignature() != testenv.Unofficial(testenv.NDBSignature) {
			t.Fatalf("scan %d: got %s %q", i, job.Verdict, job.FirstSignature())
		}
		if job.Cached != want {
			t.Errorf("scan %d: got cached=%v, want %v", i, job.Cached, want)
		}
		stored, err := st.GetJob(ctx, job.ID)
		if err != nil || stored.Verdict != scan.Infected {
			t.Errorf("scan %d: stored job: %v %+v", i, err, stored)
		}
	}
	if n := eng.calls.Load(); n != 1 {
		t.Errorf("got %d engine calls for three scans of one sample, want 1", n)
	}
	// Lookup by hash answers from the cache too.
	job, err := p.Lookup(ctx, scanSHA(testenv.NDBSample()))
	if err != nil || job.Verdict != scan.Infected || !job.Cached {
		t.Errorf("lookup: got %+v, %v", job, err)
	}

	// New signatures change the engine's version and so the cache key:
	// the next scan is a miss.
	os.WriteFile(filepath.Join(sigs, "more.hdb"), []byte("00000000000000000000000000000000:1:Other\n"), 0o644)
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	job, err = p.Scan(ctx, pipeline.Request{Name: "marker.bin", Body: bytes.NewReader(testenv.NDBSample()), Size: -1})
	if err != nil || job.Cached {
		t.Errorf("after a signature change: got cached=%v, %v; want a fresh scan", job.Cached, err)
	}
	if n := eng.calls.Load(); n != 2 {
		t.Errorf("got %d engine calls, want 2", n)
	}
}

// TestClamdErrorsAreNotCached: an engine failure is an error verdict, not
// cached, and the next scan asks the engine again.
func TestClamdErrorsAreNotCached(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	e, err := clamd.New(clamd.Config{Name: "clamav", Addresses: []string{c.TCP}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := openStore(t)
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{e}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := testenv.Deterministic(t.Name(), 5000)
	job, err := p.Scan(ctx, pipeline.Request{Name: "x", Body: bytes.NewReader(data), Size: -1})
	if err != nil || job.Verdict != scan.Clean {
		t.Fatalf("got %s, %v", job.Verdict, err)
	}
	c.Kill()
	other := testenv.Deterministic(t.Name()+"2", 5000)
	job, _ = p.Scan(ctx, pipeline.Request{Name: "y", Body: bytes.NewReader(other), Size: -1})
	if job.Verdict != scan.Error || job.Reason != scan.ReasonEngineError {
		t.Errorf("clamd down: got %s/%s, want error/engine_error", job.Verdict, job.Reason)
	}
	if _, err := p.Lookup(ctx, job.SHA256); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an error verdict was cached: %v", err)
	}
}

func scanSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
