package server

import (
	"context"
	"sync"
	"time"
)

// readyCacheTTL is how long a readiness check that asks a remote service
// stays answered by its last success.
const readyCacheTTL = 5 * time.Second

// cachedCheck is a readiness check that asks a remote service (S3 for the
// quarantine bucket), remembering a success for ttl so that frequent
// probes, from every kubelet and load balancer, do not each become a
// request to that service while all is well.
//
// A failure is not cached: it is returned as it is and the next probe asks
// again. Readiness failing takes the instance out of service, so it must
// show a recovered bucket on the first probe after it, not ttl later; and
// while it fails, the rate of checks is the probes' own (every few
// seconds from each prober), no more than before this cache, on an
// instance that takes no traffic meanwhile. A success found stale is the
// only cost of the cache: a bucket removed shows as failing up to ttl
// late.
type cachedCheck struct {
	check func(context.Context) error
	ttl   time.Duration
	now   func() time.Time // time.Now; a fake clock in tests

	mu      sync.Mutex
	okUntil time.Time // zero when the last answer was a failure
}

func newCachedCheck(check func(context.Context) error, ttl time.Duration) *cachedCheck {
	return &cachedCheck{check: check, ttl: ttl, now: time.Now}
}

// Check answers nil while the last success is younger than ttl, else runs
// the check.
func (c *cachedCheck) Check(ctx context.Context) error {
	start := c.now()
	c.mu.Lock()
	fresh := start.Before(c.okUntil)
	c.mu.Unlock()
	if fresh {
		return nil
	}
	// Concurrent probes that find the cache stale each ask: the lock is
	// not held across the call, so a slow service cannot make probes
	// wait past their own deadlines for another probe's answer.
	err := c.check(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.okUntil = time.Time{}
		return err
	}
	// Counted from when the check started: a slow answer says nothing
	// about the service after the request was sent.
	c.okUntil = start.Add(c.ttl)
	return nil
}
