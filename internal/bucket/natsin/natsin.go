// Package natsin reads S3 / MinIO event notifications from NATS
// JetStream — MinIO's NATS target with JetStream on — and hands each
// message to the bucket intake. A message is acknowledged only after the
// intake has queued its jobs (or, scanning in place, stored and acted on
// their verdicts); one that can never be handled (malformed
// JSON) is terminated, and the consumer goes on.
package natsin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/queue/natsq"
)

// Config says where the events are.
type Config struct {
	URL string
	// Stream holds the events; it is created (file storage, capturing
	// Subject, work-queue retention: acknowledged events are removed)
	// when it does not exist. Default "MINIO_EVENTS".
	Stream string
	// Subject is MinIO's MINIO_NOTIFY_NATS_SUBJECT.
	Subject string
	// Durable names the consumer; default "lazaret-events".
	Durable string
	// Concurrency is how many messages are handled at once; 0 means 1.
	// A handler that scans in place (bucket.Config.Runner) needs as many
	// as there are scans to run side by side.
	Concurrency int
	// AckWait is how long JetStream waits for an acknowledgement before
	// it delivers a message again; a running handler says it is still at
	// work every third of it. 0 means DefaultAckWait.
	AckWait time.Duration
}

// DefaultAckWait is Config.AckWait's default.
const DefaultAckWait = time.Minute

// Run consumes until ctx ends; it returns nil then. The NATS client
// reconnects by itself when the server goes away. Messages are fetched
// only when a handler is free, with queue.RunRawConsumer.
func Run(ctx context.Context, cfg Config, h bucket.DeliveryHandler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" || cfg.Subject == "" {
		return errors.New("natsin: url and subject are required")
	}
	if cfg.Stream == "" {
		cfg.Stream = "MINIO_EVENTS"
	}
	if cfg.Durable == "" {
		cfg.Durable = "lazaret-events"
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("lazaret-events"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		return fmt.Errorf("natsin: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsin: jetstream: %w", err)
	}
	var cons jetstream.Consumer
	// The server may still be starting: retry setup until it answers.
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		cons, err = setup(ctx, js, cfg)
		if err == nil {
			break
		}
		log.LogAttrs(ctx, slog.LevelWarn, "event stream not ready; retrying", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	log.LogAttrs(ctx, slog.LevelInfo, "consuming S3 events", slog.String("stream", cfg.Stream), slog.String("subject", cfg.Subject),
		slog.Int("concurrency", cfg.Concurrency))
	// Handlers tell JetStream they are still at work every third of
	// AckWait; when ctx ends, running handlers get queue.DefaultSoftStop
	// to finish their scans before their context is cancelled too.
	err = queue.RunRawConsumer(ctx, natsq.NewRawSource(nc, cons), bucket.RawHandler(h, log),
		queue.ConsumeOptions{Concurrency: cfg.Concurrency}, cfg.AckWait/3, log)
	if err != nil {
		return fmt.Errorf("natsin: %w", err)
	}
	return nil
}

func setup(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := js.Stream(sctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Work-queue retention: an event leaves the stream once it is
		// acknowledged, so the stream holds only what is still to do
		// instead of every event ever sent. A stream made by the user
		// (to be read by others too) is used as it is.
		stream, err = js.CreateStream(sctx, jetstream.StreamConfig{
			Name: cfg.Stream, Subjects: []string{cfg.Subject}, Storage: jetstream.FileStorage,
			Retention: jetstream.WorkQueuePolicy,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("natsin: stream %s: %w", cfg.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(sctx, jetstream.ConsumerConfig{
		Durable: cfg.Durable, FilterSubject: cfg.Subject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: cfg.AckWait, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("natsin: consumer %s: %w", cfg.Durable, err)
	}
	return cons, nil
}
