package bucket

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lazaret/lazaret/internal/queue"
)

// DeliveryHandler takes one notification body, and whether the broker
// delivered it before: an Intake, or a test's stand-in.
type DeliveryHandler interface {
	HandleDelivery(ctx context.Context, body []byte, redelivered bool) (Outcome, error)
}

// retryDelay is how long an event whose handling failed waits before it
// comes again, so that an outage of the store or the job queue is not a
// hot loop.
const retryDelay = time.Second

// RawHandler returns the handler the broker intakes (amqpin, natsin) run
// with queue.RunRawConsumer. It hands each delivery to h and acknowledges
// it only once h has queued its jobs (or, scanning in place, stored and
// acted on their verdicts). A malformed notification, which can never be
// handled, is terminated (dead-lettered where the broker has a dead-letter
// queue); any other failure is retried after retryDelay.
func RawHandler(h DeliveryHandler, log *slog.Logger) queue.RawHandler {
	return func(ctx context.Context, d queue.RawDelivery) {
		out, err := h.HandleDelivery(ctx, d.Body(), d.Redelivered())
		switch {
		case err == nil:
			if err := d.Ack(ctx); err != nil {
				log.LogAttrs(ctx, slog.LevelWarn, "ack failed; the event may come again", slog.String("error", err.Error()))
			}
			log.LogAttrs(ctx, slog.LevelDebug, "events handled", slog.Int("queued", out.Queued),
				slog.Int("scanned", out.Scanned), slog.Int("duplicates", out.Duplicates), slog.Int("ignored", out.Ignored))
		case errors.Is(err, ErrMalformed):
			log.LogAttrs(ctx, slog.LevelWarn, "malformed event terminated", slog.String("error", err.Error()))
			// A settlement that fails leaves the delivery to the consume
			// loop, which Naks it (and logs if that fails too).
			_ = d.Term(ctx, err.Error())
		default:
			log.LogAttrs(ctx, slog.LevelWarn, "event will be retried", slog.String("error", err.Error()))
			_ = d.Nak(ctx, retryDelay)
		}
	}
}
