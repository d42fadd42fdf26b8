package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/outbox"
	"github.com/lazaret/lazaret/internal/redact"
	"github.com/lazaret/lazaret/internal/scan"
)

// Objects opens the S3 / MinIO client with the configured effects, or
// returns nil when no S3 endpoint is configured.
func Objects(ctx context.Context, cfg config.Config, log *slog.Logger) (*objstore.Store, error) {
	if cfg.S3.Endpoint == "" {
		return nil, nil
	}
	return objstore.Open(ctx, objstore.Config{
		Endpoint:           cfg.S3.Endpoint,
		AccessKey:          cfg.S3.AccessKey,
		SecretKey:          cfg.S3.SecretKey.Reveal(),
		Region:             cfg.S3.Region,
		PathStyle:          cfg.S3.PathStyle,
		CAFile:             cfg.S3.CAFile,
		InsecureSkipVerify: cfg.S3.InsecureSkipVerify,
		DisableTags:        !cfg.Effects.Tag,
		TagKey:             cfg.Effects.TagKey,
		TagPending:         cfg.Effects.TagPending,
		OnInfected:         cfg.Effects.OnInfected,
		QuarantineBucket:   cfg.Effects.QuarantineBucket,
		QuarantinePrefix:   cfg.Effects.QuarantinePrefix,
	}, log)
}

// Notifier tells the configured webhooks about results.
type Notifier struct {
	hooks      []hook
	publishers []publisher
	outbox     *outbox.Dispatcher // nil: webhooks are delivered inline
	log        *slog.Logger
}

// publisher is a broker that receives every result.
type publisher struct {
	prefix string
	p      interface {
		Publish(ctx context.Context, subject, id string, body []byte) error
		Close() error
	}
}

type hook struct {
	name        string // the outbox target: index and URL without credentials
	url         string
	reportClean bool
	w           *notify.Webhook
}

// UseOutbox makes the Notifier write webhook deliveries to the store's
// outbox instead of sending them inline, and returns the dispatcher that
// sends them (run it with Run). A nil Notifier returns nil.
func (n *Notifier) UseOutbox(s outbox.Store) *outbox.Dispatcher {
	if n == nil || len(n.hooks) == 0 {
		return nil
	}
	var targets []outbox.Target
	for _, h := range n.hooks {
		targets = append(targets, outbox.Target{Name: h.name, URL: h.url, D: h.w})
	}
	n.outbox = outbox.New(s, targets, outbox.DefaultPolicy, n.log.With("part", "outbox"))
	return n.outbox
}

// NewNotifier returns the Notifier for the configured webhooks, or nil
// when none is configured.
func NewNotifier(cfg config.Config, log *slog.Logger) (*Notifier, error) {
	n := &Notifier{log: log}
	for i, wc := range cfg.Notify.Webhooks {
		w, err := notify.NewWebhook(notify.WebhookConfig{
			Secret: wc.Secret.Reveal(), CAFile: wc.CAFile, InsecureSkipVerify: wc.InsecureSkipVerify,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("notify.webhooks[%d]: %w", i, err)
		}
		n.hooks = append(n.hooks, hook{name: fmt.Sprintf("webhook[%d] %s", i, redact.URL(wc.URL.Reveal())),
			url: wc.URL.Reveal(), reportClean: wc.ReportClean, w: w})
	}
	if a := cfg.Notify.AMQP; a != nil {
		ex := a.Exchange
		if ex == "" {
			ex = "lazaret"
		}
		p, err := notify.NewAMQPPublisher(a.URL.Reveal(), ex)
		if err != nil {
			return nil, fmt.Errorf("notify.amqp: %w", err)
		}
		n.publishers = append(n.publishers, publisher{p: p})
	}
	if c := cfg.Notify.NATS; c != nil {
		p, err := notify.NewNATSPublisher(c.URL.Reveal())
		if err != nil {
			return nil, fmt.Errorf("notify.nats: %w", err)
		}
		n.publishers = append(n.publishers, publisher{prefix: c.SubjectPrefix, p: p})
	}
	if len(n.hooks) == 0 && len(n.publishers) == 0 {
		return nil, nil
	}
	return n, nil
}

// Close closes the broker connections.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	var errs []error
	for _, p := range n.publishers {
		errs = append(errs, p.p.Close())
	}
	return errors.Join(errs...)
}

// Completed sends scan.completed for a finished job. Each delivery's ID is
// stable for a job, so a retried notification is one delivery to the
// receiver.
func (n *Notifier) Completed(ctx context.Context, job *scan.Job) error {
	if n == nil {
		return nil
	}
	body, err := notify.Payload(notify.EventScanCompleted, job)
	if err != nil {
		return err
	}
	return n.send(ctx, notify.EventScanCompleted, job, body, job.ID)
}

// Changed sends verdict.changed after a rescan changed a job's verdict,
// with the previous verdict in "previous_verdict".
func (n *Notifier) Changed(ctx context.Context, job *scan.Job, previous scan.Verdict) error {
	if n == nil {
		return nil
	}
	body, err := notify.ChangedPayload(job, previous)
	if err != nil {
		return err
	}
	return n.send(ctx, notify.EventVerdictChanged, job, body, fmt.Sprintf("%s-%s-%s", job.ID, previous, job.Verdict))
}

// send delivers body, the event's payload for job, to every webhook and
// broker that takes it. idBase makes the delivery IDs.
func (n *Notifier) send(ctx context.Context, event string, job *scan.Job, body []byte, idBase string) error {
	// A few quick tries here; beyond that the job's queue message (or
	// the next rescan) brings the notification again.
	policy := notify.Policy{MaxAttempts: 3}
	var errs []error
	for i, h := range n.hooks {
		if !notify.ShouldSendEvent(event, job, h.reportClean) {
			continue
		}
		id := fmt.Sprintf("%s-%d-%s", idBase, i, event)
		if n.outbox != nil {
			// Durable first; the dispatcher sends it, retrying for as
			// long as it takes.
			if err := n.outbox.Enqueue(ctx, h.name, id, event, body); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		d := notify.Delivery{ID: id, URL: h.url, Event: event, Body: body}
		if err := notify.Retry(ctx, policy, h.w, &d, n.log); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range n.publishers {
		if err := p.p.Publish(ctx, notify.ResultsSubject(p.prefix, string(job.Verdict)), idBase+"-"+event, body); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
