package testenv

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Logger returns a logger that writes to the test's log at level and
// above, and drops lines logged after the test ended (a late line from a
// goroutine would otherwise panic).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Buffer is a bytes.Buffer that a logger (or a command's output) and the
// test can use at once.
type Buffer struct {
	// Max, if positive, bounds what is kept: later writes are dropped
	// (and reported written), so a chatty server cannot fill memory.
	Max int
	mu  sync.Mutex
	b   bytes.Buffer
}

// Write appends p, or as much of it as Max leaves room for.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Max > 0 {
		s.b.Write(p[:min(len(p), max(s.Max-s.b.Len(), 0))])
		return len(p), nil
	}
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
