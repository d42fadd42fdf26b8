package notify

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for attempt, full := range map[int]time.Duration{
		1:    100 * time.Millisecond,
		2:    200 * time.Millisecond,
		3:    400 * time.Millisecond,
		4:    800 * time.Millisecond,
		5:    time.Second,
		80:   time.Second,
		1000: time.Second,
	} {
		for range 200 {
			if got := p.Backoff(attempt); got < full/2 || got > full {
				t.Fatalf("Backoff(%d) = %s, want in [%s, %s]", attempt, got, full/2, full)
			}
		}
	}
	// Huge caps must not overflow.
	huge := Policy{BaseDelay: time.Second, MaxDelay: 1<<63 - 1}
	if got := huge.Backoff(200); got <= 0 {
		t.Errorf("Backoff with a huge cap = %s", got)
	}
	// Jitter spreads retries.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[p.Backoff(4)] = true
	}
	if len(seen) < 10 {
		t.Errorf("Backoff(4) took %d distinct values in 50 calls, want jitter", len(seen))
	}
}

func TestPolicyNext(t *testing.T) {
	p := Policy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryAfter: time.Minute}
	retryable := &DeliveryError{StatusCode: 503}
	tests := []struct {
		name    string
		attempt int
		err     error
		again   bool
		min     time.Duration
		max     time.Duration
	}{
		{"success", 1, nil, false, 0, 0},
		{"retryable", 1, retryable, true, 5 * time.Millisecond, 10 * time.Millisecond},
		{"network error", 2, errors.New("connection reset"), true, 5 * time.Millisecond, 10 * time.Millisecond},
		{"budget spent", 3, retryable, false, 0, 0},
		{"permanent", 1, &DeliveryError{StatusCode: 400, Permanent: true}, false, 0, 0},
		{"retry-after", 1, &DeliveryError{StatusCode: 429, RetryAfter: 30 * time.Second}, true, 30 * time.Second, 30 * time.Second},
		{"retry-after capped", 1, &DeliveryError{StatusCode: 429, RetryAfter: 5 * time.Hour}, true, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, again := p.Next(tt.attempt, tt.err)
			if again != tt.again || d < tt.min || d > tt.max {
				t.Errorf("Next(%d, %v) = %s, %t; want %t and a delay in [%s, %s]", tt.attempt, tt.err, d, again, tt.again, tt.min, tt.max)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"7":                             7 * time.Second,
		" 7 ":                           7 * time.Second,
		"soon":                          0,
		"1.5":                           0,
		"99999999999999999999":          0, // does not parse as int64
		"9999999999":                    maxRetryAfterCap,
		"Mon, 02 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Mon, 02 Mar 2026 11:00:00 GMT": 0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

// fakeDeliverer fails with errs in turn, then succeeds.
type fakeDeliverer struct {
	errs []error
	ids  []string
}

func (f *fakeDeliverer) Deliver(_ context.Context, d Delivery) error {
	f.ids = append(f.ids, d.ID)
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func TestRetryOutcomes(t *testing.T) {
	transient := &DeliveryError{StatusCode: http.StatusBadGateway, Err: errors.New("bad gateway")}
	permanent := &DeliveryError{StatusCode: http.StatusNotFound, Permanent: true, Err: errors.New("not found")}
	tests := []struct {
		name     string
		errs     []error
		attempts int
		check    func(error) bool
	}{
		{"first try", nil, 1, func(err error) bool { return err == nil }},
		{"after two failures", []error{transient, transient}, 3, func(err error) bool { return err == nil }},
		{"permanent", []error{transient, permanent}, 2, IsPermanent},
		{"gives up", []error{transient, transient, transient, transient}, 3, func(err error) bool {
			return errors.Is(err, ErrGaveUp) && errors.Is(err, transient)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDeliverer{errs: tt.errs}
			d := NewDelivery("http://unused/", EventScanCompleted, nil)
			err := Retry(context.Background(), Policy{MaxAttempts: 3, BaseDelay: time.Microsecond}, f, &d, nil)
			if !tt.check(err) {
				t.Errorf("Retry: unexpected error %v", err)
			}
			if len(f.ids) != tt.attempts || d.Attempt != tt.attempts {
				t.Errorf("%d attempts, d.Attempt %d; want %d", len(f.ids), d.Attempt, tt.attempts)
			}
			for _, id := range f.ids {
				if id != d.ID {
					t.Errorf("attempt with id %s, want %s", id, d.ID)
				}
			}
		})
	}
}

func TestRetryCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeDeliverer{}
	d := NewDelivery("http://unused/", EventScanCompleted, nil)
	if err := Retry(ctx, Policy{}, f, &d, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if len(f.ids) != 0 {
		t.Errorf("%d attempts after cancel, want 0", len(f.ids))
	}
}
