// Package server assembles and runs lazaret's long-running process: the
// HTTP API and the queue workers (`lazaret serve`), or the workers alone
// (`lazaret worker`). Tests start it in-process on 127.0.0.1:0.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/lazaret/lazaret/internal/api"
	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/bucket/amqpin"
	"github.com/lazaret/lazaret/internal/bucket/natsin"
	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/metrics"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/proxy"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/rescan"
	"github.com/lazaret/lazaret/internal/store"
	"github.com/lazaret/lazaret/internal/worker"
)

// Options says what to run.
type Options struct {
	// HTTP serves the API on cfg.Listen.
	HTTP bool
	// Workers consumes the job queue.
	Workers bool
	// InsecureNoAuth allows listening beyond loopback without tokens.
	InsecureNoAuth bool
	// Console serves the web console at / (nil: none).
	Console http.Handler
	Logger  *slog.Logger
}

// App is a running lazaret process.
type App struct {
	log     *slog.Logger
	store   store.Store
	engines *build.EngineSet
	queue   queue.Queue
	httpSrv *http.Server
	ln      net.Listener
	debug   *http.Server

	stopWorkers context.CancelFunc
	stopIntakes []context.CancelFunc
	notifier    *build.Notifier
	proxies     []*proxy.Proxy
	wg          sync.WaitGroup
	errc        chan error
	closeOnce   sync.Once
}

// Start builds every part from cfg and starts serving. On error nothing is
// left running.
func Start(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{log: log, errc: make(chan error, 2)}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	var tokens []api.Token
	for _, t := range cfg.Auth.Tokens {
		v, err := t.TokenValue()
		if err != nil {
			return nil, err
		}
		role, err := api.ParseRole(t.Role)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, api.Token{Name: t.Name, Role: role, Value: v})
	}
	if opts.HTTP && len(tokens) == 0 && !opts.InsecureNoAuth && !config.IsLoopback(cfg.Listen) {
		return nil, fmt.Errorf("listen %s: no API tokens are configured, so lazaret listens only on loopback; configure auth.tokens or pass --insecure-no-auth", cfg.Listen)
	}

	if a.store, err = build.Store(ctx, cfg, log.With("part", "store")); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	reports, err := build.Reports(cfg)
	if err != nil {
		return nil, err
	}
	var parts build.EngineParts
	if reports != nil {
		parts.Reports = reports
	}
	if a.engines, err = build.EnginesWith(ctx, cfg.Engines, nil, parts, log); err != nil {
		return nil, err
	}
	if a.queue, err = build.Queue(ctx, cfg, log.With("part", "queue")); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	blobs, err := blob.NewDir(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	objects, err := build.Objects(ctx, cfg, log.With("part", "s3"))
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	notifier, err := build.NewNotifier(cfg, log.With("part", "notify"))
	if err != nil {
		return nil, err
	}
	a.notifier = notifier
	if opts.Workers {
		if d := notifier.UseOutbox(a.store); d != nil {
			a.goUntilStopped(ctx, "outbox", func(ctx context.Context) error { d.Run(ctx); return nil })
		}
	}
	var intake *bucket.Intake
	if objects != nil {
		bc := bucket.Config{Jobs: a.store, Queue: a.queue, Buckets: cfg.Buckets,
			QuarantineBucket: cfg.Effects.QuarantineBucket, QuarantinePrefix: cfg.Effects.QuarantinePrefix,
			Logger: log.With("part", "bucket")}
		if cfg.Effects.TagPending {
			bc.Pending = objects
		}
		if intake, err = bucket.New(bc); err != nil {
			return nil, err
		}
	}
	uploads, err := build.KeptUploads(cfg)
	if err != nil {
		return nil, err
	}
	if uploads != nil {
		a.goUntilStopped(ctx, "uploads", func(ctx context.Context) error {
			build.PruneUploads(ctx, uploads, cfg, log.With("part", "uploads"))
			return nil
		})
	}
	if reports != nil {
		a.goUntilStopped(ctx, "reports", func(ctx context.Context) error {
			build.PruneReports(ctx, reports, cfg, log.With("part", "reports"))
			return nil
		})
	}
	m := metrics.New(a.queue, a.engines)
	if notifier != nil {
		m.WatchDeliveries(a.store)
	}
	pc := pipeline.Config{
		Engines:       a.engines.List(),
		Store:         a.store,
		MaxSize:       int64(cfg.Limits.MaxSize),
		MemLimit:      int64(cfg.Limits.MemorySpool),
		TempDir:       "",
		EngineTimeout: cfg.Limits.EngineTimeout,
		Logger:        log,
		Observer:      m,
	}
	if reports != nil {
		pc.Reports = reports
	}
	p, err := pipeline.New(pc)
	if err != nil {
		return nil, err
	}

	var w *worker.Worker
	if opts.Workers {
		wc := worker.Config{Queue: a.queue, Jobs: a.store, Blobs: blobs, Pipeline: p,
			Concurrency: cfg.Workers, Logger: log.With("part", "worker")}
		if objects != nil {
			wc.Objects = objects
		}
		if notifier != nil {
			wc.Notify = notifier.Completed
		}
		if uploads != nil {
			wc.Keep = uploads
		}
		if w, err = worker.New(wc); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.stopWorkers = cancel
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := w.Run(wctx); err != nil {
				a.errc <- fmt.Errorf("worker: %w", err)
			}
		}()
	}

	// A broker's delivery (RabbitMQ, NATS JetStream) is durable and
	// acknowledged last, so this process's workers scan such events in
	// place rather than queue them a second time (see
	// bucket.Config.Runner); retries still go through the job queue.
	// MinIO's webhook target wants a quick answer: its events are queued.
	events, concurrency := intake, 1
	if intake != nil && w != nil {
		bc := intake.Config()
		bc.Runner, bc.MaxAttempts = w, cfg.Queue.MaxDeliveries
		if events, err = bucket.New(bc); err != nil {
			return nil, err
		}
		concurrency = cfg.Workers
	}
	if intake != nil && cfg.Events.AMQP != nil {
		ec := cfg.Events.AMQP
		a.goUntilStopped(ctx, "amqp events", func(ctx context.Context) error {
			return amqpin.Run(ctx, amqpin.Config{URL: ec.URL.Reveal(), Queue: ec.Queue, Exchange: ec.Exchange,
				RoutingKey: ec.RoutingKey, Prefetch: ec.Prefetch, Concurrency: concurrency}, events, log.With("part", "events"))
		})
	} else if cfg.Events.AMQP != nil {
		return nil, errors.New("events.amqp: bucket scanning needs s3.endpoint")
	}
	if intake != nil && cfg.Events.NATS != nil {
		ec := cfg.Events.NATS
		a.goUntilStopped(ctx, "nats events", func(ctx context.Context) error {
			return natsin.Run(ctx, natsin.Config{URL: ec.URL.Reveal(), Stream: ec.Stream, Subject: ec.Subject,
				AckWait: ec.AckWait, Concurrency: concurrency}, events, log.With("part", "events"))
		})
	} else if cfg.Events.NATS != nil {
		return nil, errors.New("events.nats: bucket scanning needs s3.endpoint")
	}

	if opts.Workers && cfg.Rescan.Schedule != "" {
		sched, err := cron.ParseStandard(cfg.Rescan.Schedule)
		if err != nil {
			return nil, fmt.Errorf("rescan.schedule: %w", err)
		}
		rc := rescan.Config{Jobs: a.store, Pipeline: p, VersionChanged: true, OlderThan: cfg.Rescan.OlderThan,
			Logger: log.With("part", "rescan")}
		if objects != nil {
			rc.Objects = objects
		}
		if notifier != nil {
			rc.Changed = notifier.Changed
		}
		if uploads != nil {
			rc.Uploads = uploads
		}
		a.goUntilStopped(ctx, "rescan", func(ctx context.Context) error {
			runScheduled(ctx, sched, rc, log.With("part", "rescan"))
			return nil
		})
	}

	if opts.HTTP {
		ac := api.Config{
			Scanner: p, Jobs: a.store, Queue: a.queue, Blobs: blobs, Engines: a.engines,
			Tokens: tokens, MaxBodySize: int64(cfg.Limits.MaxSize) + 1<<20, MaxSignatureAge: cfg.Limits.MaxSignatureAge,
			Metrics: m.Handler(), Console: opts.Console, Observe: m.ObserveHTTP, Logger: log.With("part", "api"),
		}
		if intake != nil {
			ac.Events = intake
		}
		if objects != nil && objects.Config().OnInfected == objstore.OnInfectedQuarantine {
			// Without it every infected object would fail its move.
			// Cached, so that each probe is not a request to S3.
			qb := cfg.Effects.QuarantineBucket
			quarantine := newCachedCheck(func(ctx context.Context) error { return objects.Ping(ctx, qb) }, readyCacheTTL)
			ac.ReadyChecks = map[string]func(context.Context) error{"quarantine bucket": quarantine.Check}
		}
		if notifier != nil {
			ac.Deliveries = a.store
		}
		if uploads != nil {
			ac.Keep = uploads
		}
		if reports != nil {
			ac.Reports = reports
		}
		var proxyMetrics *proxy.Metrics
		for _, pc := range cfg.Proxies {
			if proxyMetrics == nil {
				if proxyMetrics, err = proxy.NewMetrics(m.Registerer()); err != nil {
					return nil, err
				}
			}
			pcfg := proxy.FromConfig(pc)
			pcfg.CacheDir, pcfg.Scanner, pcfg.MaxSize = filepath.Join(cfg.DataDir, "proxy", pc.Name), p, int64(cfg.Limits.MaxSize)
			pcfg.Metrics, pcfg.Logger = proxyMetrics, log.With("part", "proxy", "proxy", pc.Name)
			px, err := proxy.New(pcfg)
			if err != nil {
				return nil, fmt.Errorf("proxies: %s: %w", pc.Name, err)
			}
			a.proxies = append(a.proxies, px)
			if ac.Proxies == nil {
				ac.Proxies = map[string]http.Handler{}
			}
			ac.Proxies[pc.Name] = px
		}
		h, err := api.New(ac)
		if err != nil {
			return nil, err
		}
		a.httpSrv = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		if a.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if cfg.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			a.ln = tls.NewListener(a.ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.httpSrv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.errc <- fmt.Errorf("http: %w", err)
			}
		}()
		log.LogAttrs(ctx, slog.LevelInfo, "serving", slog.String("addr", a.ln.Addr().String()),
			slog.Bool("tls", cfg.TLS.CertFile != ""), slog.Int("tokens", len(tokens)))
	}
	if cfg.DebugListen != "" {
		if err := a.serveDebug(cfg.DebugListen); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// goUntilStopped runs fn in a goroutine of its own, with a context that
// ends when the App stops its intakes (Shutdown), not with Start's ctx,
// which only bounds starting. An error fn returns ends the App (Err),
// prefixed with what.
func (a *App) goUntilStopped(ctx context.Context, what string, fn func(context.Context) error) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopIntakes = append(a.stopIntakes, cancel)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := fn(rctx); err != nil {
			a.errc <- fmt.Errorf("%s: %w", what, err)
		}
	}()
}

// serveDebug serves Go's profiles on a loopback address (config checks
// that it is one).
func (a *App) serveDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go a.debug.Serve(ln)
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "serving profiles", slog.String("addr", ln.Addr().String()))
	return nil
}

// Addr is the API's address ("" without HTTP).
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Err delivers a fatal error of a running part.
func (a *App) Err() <-chan error { return a.errc }

// Shutdown stops taking new work, lets in-flight requests and jobs finish
// (until ctx ends), then releases everything.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	if a.httpSrv != nil {
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	// Intakes first: no new events while the workers drain.
	for _, stop := range a.stopIntakes {
		stop()
	}
	if a.stopWorkers != nil {
		a.stopWorkers()
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, errors.New("shutdown: workers still running at the deadline"))
	}
	errs = append(errs, a.close())
	return errors.Join(errs...)
}

func (a *App) close() error {
	var errs []error
	a.closeOnce.Do(func() {
		if a.httpSrv != nil {
			a.httpSrv.Close()
		} else if a.ln != nil {
			a.ln.Close()
		}
		if a.debug != nil {
			a.debug.Close()
		}
		for _, stop := range a.stopIntakes {
			stop()
		}
		if a.stopWorkers != nil {
			a.stopWorkers()
		}
		if a.queue != nil {
			errs = append(errs, a.queue.Close())
		}
		errs = append(errs, a.notifier.Close())
		for _, px := range a.proxies {
			px.Close()
		}
		if a.engines != nil {
			errs = append(errs, a.engines.Close())
		}
		if a.store != nil {
			errs = append(errs, a.store.Close())
		}
	})
	return errors.Join(errs...)
}

// Run starts the App and runs it until ctx ends or a part fails, then
// shuts down within grace.
func Run(ctx context.Context, cfg config.Config, opts Options, grace time.Duration) error {
	a, err := Start(ctx, cfg, opts)
	if err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-a.errc:
	}
	a.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return errors.Join(runErr, a.Shutdown(sctx))
}

// runScheduled runs a rescan at every time of the schedule until ctx
// ends. Runs do not overlap: a run that lasts past the next time skips it.
func runScheduled(ctx context.Context, sched cron.Schedule, rc rescan.Config, log *slog.Logger) {
	for {
		next := sched.Next(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		sum, err := rescan.Run(ctx, rc)
		if err != nil && ctx.Err() == nil {
			log.LogAttrs(ctx, slog.LevelWarn, "scheduled rescan failed", slog.String("error", err.Error()))
			continue
		}
		log.LogAttrs(ctx, slog.LevelInfo, "scheduled rescan done", slog.Int("checked", sum.Checked),
			slog.Int("rescanned", sum.Rescanned), slog.Int("changed", sum.Changed), slog.Int("errors", sum.Errors))
	}
}
