package clamd

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Backoff of an address whose dial failed: backoffBase after the first
// failure, doubling with each further one, at most backoffMax.
const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// backoff returns how long an address is passed over after its n-th
// consecutive failure.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > 16 { // 500ms << 16 is far above the cap; avoid overflow
		return backoffMax
	}
	return min(backoffBase<<(n-1), backoffMax)
}

// conn is one connection to clamd. In session mode (IDSESSION) it serves
// many scans, one at a time; replies carry the command's number.
type conn struct {
	nc       net.Conn
	r        *bufio.Reader
	session  bool
	started  bool   // IDSESSION has been sent
	nextID   uint64 // number clamd gives the next command in the session
	lastUsed time.Time
}

// maxReply bounds one reply. Replies are a signature name at most; a
// longer one is not clamd's.
const maxReply = 4096

func newConn(nc net.Conn, session bool) *conn {
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, maxReply), session: session, nextID: 1}
}

// close closes the connection. clamd ends a session when the client
// goes, so there is no need to send END and wait.
func (c *conn) close() { c.nc.Close() }

// backend is one clamd address with its pool and health.
type backend struct {
	addr address
	// slots holds a token per connection in use; its capacity is
	// MaxConns.
	slots chan struct{}
	// load counts scans holding or waiting for a slot, for least-loaded
	// selection.
	load atomic.Int32
	// down is set while the address is backed off, so that the hot
	// path of a healthy address takes no lock.
	down atomic.Bool
	// noFD is set once clamd at this address answered zFILDES with
	// UNKNOWN COMMAND (built without descriptor passing).
	noFD atomic.Bool

	mu        sync.Mutex
	closed    bool    // the engine is closed: pool nothing more
	idle      []*conn // most recently used last
	failures  int
	downUntil time.Time
}

func newBackend(a address, maxConns int) *backend {
	return &backend{addr: a, slots: make(chan struct{}, maxConns)}
}

// acquire waits for a connection slot.
func (b *backend) acquire(ctx context.Context) error {
	b.load.Add(1)
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		b.load.Add(-1)
		return ctx.Err()
	}
}

func (b *backend) release() {
	<-b.slots
	b.load.Add(-1)
}

// takeIdle returns the most recently used idle connection, closing those
// idle longer than maxIdle, or nil.
func (b *backend) takeIdle(now time.Time, maxIdle time.Duration) *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.idle) > 0 {
		c := b.idle[len(b.idle)-1]
		b.idle[len(b.idle)-1] = nil
		b.idle = b.idle[:len(b.idle)-1]
		if now.Sub(c.lastUsed) < maxIdle {
			return c
		}
		// The newest is stale, so all older ones are too.
		c.close()
		for _, o := range b.idle {
			o.close()
		}
		clear(b.idle)
		b.idle = b.idle[:0]
	}
	return nil
}

// putIdle returns a connection to the pool and reports whether it took
// it. There are never more idle connections than slots, because every one
// was taken under a slot.
func (b *backend) putIdle(c *conn, now time.Time) bool {
	c.lastUsed = now
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.idle = append(b.idle, c)
	return true
}

// close drains the pool for good.
func (b *backend) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.drain()
}

// drain closes every idle connection.
func (b *backend) drain() {
	b.mu.Lock()
	idle := b.idle
	b.idle = nil
	b.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// available reports whether the address is not backed off at now.
func (b *backend) available(now time.Time) bool {
	if !b.down.Load() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !now.Before(b.downUntil)
}

func (b *backend) retryAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.downUntil
}

// markDown records a failed dial and backs the address off.
func (b *backend) markDown(log *slog.Logger, now time.Time, err error) {
	b.mu.Lock()
	b.failures++
	d := backoff(b.failures)
	b.downUntil = now.Add(d)
	n := b.failures
	b.mu.Unlock()
	b.down.Store(true)
	if n == 1 {
		// Only the transition is logged: a dead address would otherwise
		// log once per scan.
		log.Warn("clamd address down", "address", b.addr.raw, "error", err, "retry_in", d)
	}
}

// markUp records a successful dial.
func (b *backend) markUp(log *slog.Logger) {
	if !b.down.Load() {
		return
	}
	b.mu.Lock()
	n := b.failures
	b.failures = 0
	b.downUntil = time.Time{}
	b.down.Store(false)
	b.mu.Unlock()
	if n > 0 {
		log.Info("clamd address up", "address", b.addr.raw, "failures", n)
	}
}
