package bucket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// settlement records how RawHandler settled a delivery.
type settlement struct {
	body        string
	redelivered bool
	got         string
}

func (s *settlement) Body() []byte      { return []byte(s.body) }
func (s *settlement) Redelivered() bool { return s.redelivered }
func (s *settlement) Ack(context.Context) error {
	s.got = "ack"
	return nil
}
func (s *settlement) Nak(_ context.Context, delay time.Duration) error {
	s.got = "nak " + delay.String()
	return nil
}
func (s *settlement) Term(context.Context, string) error {
	s.got = "term"
	return nil
}
func (s *settlement) InProgress(context.Context) error { return nil }

// handlerFunc is a DeliveryHandler.
type handlerFunc func(ctx context.Context, body []byte, redelivered bool) (Outcome, error)

func (f handlerFunc) HandleDelivery(ctx context.Context, body []byte, redelivered bool) (Outcome, error) {
	return f(ctx, body, redelivered)
}

func TestRawHandler(t *testing.T) {
	tests := []struct {
		name string
		err  error // HandleDelivery's
		want string
	}{
		{"handled", nil, "ack"},
		{"malformed", fmt.Errorf("%w: not JSON", ErrMalformed), "term"},
		{"store down", errors.New("store down"), "nak " + retryDelay.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &settlement{body: "event", redelivered: true}
			h := handlerFunc(func(_ context.Context, body []byte, redelivered bool) (Outcome, error) {
				if string(body) != "event" || !redelivered {
					t.Errorf("got body %q, redelivered %v; want %q, true", body, redelivered, "event")
				}
				return Outcome{}, tt.err
			})
			RawHandler(h, slog.New(slog.DiscardHandler))(context.Background(), d)
			if d.got != tt.want {
				t.Errorf("got %q, want %q", d.got, tt.want)
			}
		})
	}
}
