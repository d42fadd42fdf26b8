package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCheck is a readiness check that counts its calls and answers err.
type fakeCheck struct {
	calls atomic.Int32
	mu    sync.Mutex
	err   error
}

func (f *fakeCheck) check(context.Context) error {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeCheck) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// readyStep is one probe of TestCachedCheck: advance the clock by after,
// set the check's answer, then probe, wanting want and wantCalls calls so
// far.
type readyStep struct {
	after     time.Duration
	answer    error
	want      error
	wantCalls int32
}

// TestCachedCheck: a success answers probes for ttl without a call; a
// failure is never cached, so each probe asks and the first after a
// recovery sees it.
func TestCachedCheck(t *testing.T) {
	errDown := errors.New("objstore: ping held: bucket not found")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		steps []readyStep
	}{
		{"success cached for ttl", []readyStep{
			{0, nil, nil, 1},
			{time.Second, nil, nil, 1},
			{3 * time.Second, errDown, nil, 1}, // 4 s: still the cached success
			{999 * time.Millisecond, errDown, nil, 1},
			{time.Millisecond, errDown, errDown, 2}, // 5 s: stale, asks
		}},
		{"failure not cached", []readyStep{
			{0, errDown, errDown, 1},
			{0, errDown, errDown, 2},
			{time.Millisecond, errDown, errDown, 3},
			{time.Millisecond, nil, nil, 4}, // recovered: seen on the next probe
			{time.Second, errDown, nil, 4},  // and cached from then
		}},
		{"failure drops the cached success", []readyStep{
			{0, nil, nil, 1},
			{6 * time.Second, errDown, errDown, 2},
			{0, nil, nil, 3},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeCheck{}
			now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			c := newCachedCheck(f.check, 5*time.Second)
			c.now = func() time.Time { return now }
			for i, s := range tc.steps {
				now = now.Add(s.after)
				f.set(s.answer)
				if err := c.Check(ctx); !errors.Is(err, s.want) {
					t.Errorf("step %d: got %v, want %v", i, err, s.want)
				}
				if got := f.calls.Load(); got != s.wantCalls {
					t.Errorf("step %d: got %d calls, want %d", i, got, s.wantCalls)
				}
			}
		})
	}
}

// TestCachedCheckStartOfCall: the ttl counts from when the check was
// sent, so a slow answer does not stretch the cache.
func TestCachedCheckStartOfCall(t *testing.T) {
	f := &fakeCheck{}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := newCachedCheck(func(ctx context.Context) error {
		now = now.Add(4 * time.Second) // S3 takes 4 s to answer
		return f.check(ctx)
	}, 5*time.Second)
	c.now = func() time.Time { return now }
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second) // 5 s after the request was sent
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Errorf("got %d calls, want 2 (the first success was 5 s old)", got)
	}
}

// TestCachedCheckConcurrent: probes at once are safe (run with -race) and,
// once a success is cached, make no calls.
func TestCachedCheckConcurrent(t *testing.T) {
	f := &fakeCheck{}
	c := newCachedCheck(f.check, time.Hour)
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if err := c.Check(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := f.calls.Load(); got != 1 {
		t.Errorf("got %d calls, want 1", got)
	}
}
