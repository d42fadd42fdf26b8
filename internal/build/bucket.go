package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/objstore"
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

// Notifier returns the function that tells the configured webhooks about
// a finished job, or nil when none is configured. Each delivery's ID is
// stable for a job and event, so a retried notification is one delivery
// to the receiver.
func Notifier(cfg config.Config, log *slog.Logger) (func(ctx context.Context, job *scan.Job) error, error) {
	type hook struct {
		url         string
		reportClean bool
		w           *notify.Webhook
	}
	var hooks []hook
	for i, wc := range cfg.Notify.Webhooks {
		w, err := notify.NewWebhook(notify.WebhookConfig{
			Secret: wc.Secret.Reveal(), CAFile: wc.CAFile, InsecureSkipVerify: wc.InsecureSkipVerify,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("notify.webhooks[%d]: %w", i, err)
		}
		hooks = append(hooks, hook{url: wc.URL.Reveal(), reportClean: wc.ReportClean, w: w})
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	// A few quick tries here; beyond that the job's queue message is
	// delivered again later, and the notification with it.
	policy := notify.Policy{MaxAttempts: 3}
	return func(ctx context.Context, job *scan.Job) error {
		var errs []error
		for i, h := range hooks {
			if !notify.ShouldSend(job, h.reportClean) {
				continue
			}
			body, err := notify.Payload(notify.EventScanCompleted, job)
			if err != nil {
				return err
			}
			d := notify.Delivery{ID: fmt.Sprintf("%s-%d-%s", job.ID, i, notify.EventScanCompleted), URL: h.url,
				Event: notify.EventScanCompleted, Body: body}
			if err := notify.Retry(ctx, policy, h.w, &d, log); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, nil
}
