package build

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/queue/amqpq"
	"github.com/lazaret/lazaret/internal/queue/natsq"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/store/postgres"
	"github.com/lazaret/lazaret/internal/store/sqlite"
)

// Store opens the store the configuration names: PostgreSQL for a
// postgres:// URL, else SQLite (at the URL's path, or in the data dir).
func Store(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	u := cfg.Store.URL.Reveal()
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return postgres.Open(ctx, u, log)
	case u == "":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		return sqlite.Open(ctx, cfg.StorePath(), log)
	default:
		return sqlite.Open(ctx, strings.TrimPrefix(u, "sqlite:"), log)
	}
}

// Queue opens the job queue: RabbitMQ for an amqp:// or amqps:// URL,
// an external NATS server for a nats:// one, else NATS JetStream embedded
// in this process with its files in the data dir.
func Queue(ctx context.Context, cfg config.Config, log *slog.Logger) (queue.Queue, error) {
	u := cfg.Queue.URL.Reveal()
	if strings.HasPrefix(u, "amqp://") || strings.HasPrefix(u, "amqps://") {
		q, err := amqpq.Open(ctx, amqpq.Config{URL: u, Redelivery: queue.Redelivery{AckWait: cfg.Queue.AckWait, MaxDeliver: cfg.Queue.MaxDeliveries}}, log)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return q, nil
	}
	qc := natsq.Config{Redelivery: queue.Redelivery{AckWait: cfg.Queue.AckWait, MaxDeliver: cfg.Queue.MaxDeliveries}}
	if u != "" {
		qc.URL = u
	} else {
		qc.Embedded = &natsq.Embedded{StoreDir: filepath.Join(cfg.DataDir, "queue"), Listen: cfg.Queue.Listen}
	}
	q, err := natsq.Open(ctx, qc, log)
	if err != nil {
		return nil, err
	}
	return q, nil
}
