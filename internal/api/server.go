// Package api is lazaret's HTTP API: synchronous scans, queued jobs, job
// history, cached verdicts, engines, readiness, and menagerie's upload
// routes, all feeding the one pipeline. Handlers return errors; one
// adapter writes them as JSON with a status.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/statuswriter"
	"github.com/lazaret/lazaret/internal/store"
)

// Scanner runs samples through the pipeline.
type Scanner interface {
	Scan(ctx context.Context, req pipeline.Request) (*scan.Job, error)
	Lookup(ctx context.Context, sha256 string) (*scan.Job, error)
	NewID() string
}

// Jobs is what the API needs of the store.
type Jobs interface {
	CreateJob(ctx context.Context, job *scan.Job) error
	UpdateJob(ctx context.Context, job *scan.Job, from scan.Status) error
	GetJob(ctx context.Context, id string) (*scan.Job, error)
	ListJobs(ctx context.Context, f store.JobFilter) (store.JobPage, error)
	Ping(ctx context.Context) error
}

// Publisher queues jobs for workers.
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) error
	Ping(ctx context.Context) error
}

// Blobs keeps queued samples until a worker scans them.
type Blobs interface {
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	Delete(ctx context.Context, key string) error
}

// Reports opens the report files that analyzers (sandbox engines) left,
// by their SHA-256. A report that is not kept is an error wrapping
// blob.ErrNotFound.
type Reports interface {
	Open(ctx context.Context, key string) (io.ReadCloser, error)
}

// Events takes S3 event notifications (MinIO's webhook target).
type Events interface {
	Handle(ctx context.Context, body []byte) (bucket.Outcome, error)
}

// Deliveries shows the notification outbox.
type Deliveries interface {
	ListDeliveries(ctx context.Context, state string, limit int) ([]*store.Delivery, error)
	CountDeliveries(ctx context.Context) (map[string]int64, error)
}

// Engines reports the engines' versions and health.
type Engines interface {
	Status(ctx context.Context) []scan.EngineStatus
}

// Config configures a Server.
type Config struct {
	Scanner Scanner
	Jobs    Jobs
	// Queue and Blobs serve asynchronous jobs; without them POST
	// /v1/jobs and the menagerie upload answer 503.
	Queue   Publisher
	Blobs   Blobs
	Engines Engines
	// Events, if set, serves POST /v1/events/s3.
	Events Events
	// Keep, if set, keeps uploaded samples for rescans.
	Keep pipeline.Keeper
	// Reports, if set, serves analyzers' reports (GET
	// /v1/jobs/{id}/report, and menagerie's /link/{id}).
	Reports Reports
	// Deliveries, if set, serves GET /v1/deliveries.
	Deliveries Deliveries
	// Proxies are store-scan-forward gates by name, served under
	// /proxy/<name>/ without authentication: package clients cannot send
	// bearer tokens, and a gate serves only content scanned clean.
	Proxies map[string]http.Handler
	// Tokens enable bearer authentication; none means every request is
	// allowed (the caller binds loopback only).
	Tokens []Token
	// MaxBodySize bounds a request body; over it the answer is 413.
	MaxBodySize int64
	// MaxSignatureAge fails readiness for an engine whose signatures are
	// older (engines that cannot tell their signatures' age pass); 0
	// turns the check off.
	MaxSignatureAge time.Duration
	// ReadyChecks are further parts readiness needs, by the name /readyz
	// reports them under (the quarantine bucket).
	ReadyChecks map[string]func(context.Context) error
	// Metrics serves /metrics; nil answers 404.
	Metrics http.Handler
	// Console serves the web console under /; nil answers 404.
	Console http.Handler
	// Observe, if set, is called after every request with the route
	// pattern, status and duration.
	Observe func(route string, status int, d time.Duration)
	Logger  *slog.Logger
}

// Server is the API's http.Handler.
type Server struct {
	cfg    Config
	log    *slog.Logger
	tokens *tokens
	mux    *http.ServeMux
}

// DefaultMaxBodySize is used when Config.MaxBodySize is 0.
const DefaultMaxBodySize = 2<<30 + 1<<20

// New builds the API.
func New(cfg Config) (*Server, error) {
	if cfg.Scanner == nil || cfg.Jobs == nil || cfg.Engines == nil {
		return nil, errors.New("api: scanner, jobs and engines are required")
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	tk, err := newTokens(cfg.Tokens)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, tokens: tk, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s, nil
}

// route is one API route: its pattern, the role it needs (RoleNone: open
// to all) and its handler.
type route struct {
	pattern string
	role    Role
	h       func(s *Server) http.Handler
}

func fn(h func(s *Server) handlerFunc) func(s *Server) http.Handler {
	return func(s *Server) http.Handler { return s.handle(h(s)) }
}

// routeTable is the one list of routes: the mux and the OpenAPI test both
// read it.
var routeTable = []route{
	{"POST /v1/scan", RoleSubmit, fn(func(s *Server) handlerFunc { return s.postScan })},
	{"POST /v1/jobs", RoleSubmit, fn(func(s *Server) handlerFunc { return s.postJobs })},
	{"GET /v1/jobs", RoleRead, fn(func(s *Server) handlerFunc { return s.listJobs })},
	{"GET /v1/jobs/{id}", RoleRead, fn(func(s *Server) handlerFunc { return s.getJob })},
	{"GET /v1/jobs/{id}/report", RoleRead, fn(func(s *Server) handlerFunc { return s.getReport })},
	{"GET /v1/verdicts/{sha256}", RoleRead, fn(func(s *Server) handlerFunc { return s.getVerdict })},
	{"GET /v1/engines", RoleRead, fn(func(s *Server) handlerFunc { return s.getEngines })},
	{"POST /v1/events/s3", RoleSubmit, fn(func(s *Server) handlerFunc { return s.postS3Events })},
	{"GET /v1/deliveries", RoleRead, fn(func(s *Server) handlerFunc { return s.getDeliveries })},
	{"GET /proxy/{name}/", RoleNone, func(s *Server) http.Handler {
		if len(s.cfg.Proxies) == 0 {
			return nil
		}
		return http.HandlerFunc(s.proxy)
	}},
	{"POST /{engine}/upload", RoleSubmit, fn(func(s *Server) handlerFunc { return s.menagerieUpload })},
	{"GET /result/{id}", RoleRead, fn(func(s *Server) handlerFunc { return s.menagerieResult })},
	{"GET /link/{id}", RoleRead, fn(func(s *Server) handlerFunc { return s.menagerieLink })},
	{"GET /healthz", RoleNone, fn(func(s *Server) handlerFunc { return s.healthz })},
	{"GET /readyz", RoleNone, fn(func(s *Server) handlerFunc { return s.readyz })},
	{"GET /metrics", RoleRead, func(s *Server) http.Handler { return s.cfg.Metrics }},
	// The console's pages hold no data: they call the API with the
	// user's token, so they need none themselves.
	{"GET /", RoleNone, func(s *Server) http.Handler { return s.cfg.Console }},
}

func (s *Server) routes() {
	for _, r := range routeTable {
		h := r.h(s)
		if h == nil {
			continue // an optional part (metrics, console) not configured
		}
		if r.role != RoleNone {
			h = s.require(r.role, h)
		}
		s.mux.Handle(r.pattern, h)
	}
	s.mux.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path)
	}))
}

// Routes lists the API's routes as "METHOD /path" patterns.
func Routes() []string {
	out := make([]string, len(routeTable))
	for i, r := range routeTable {
		out[i] = r.pattern
	}
	return out
}

// ServeHTTP serves the API with body limits and request metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.cfg.MaxBodySize {
		// Refuse before reading: the client said how much it will send.
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{
			"error": fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.MaxBodySize), "code": "too_large"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodySize)
	if s.cfg.Observe == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := statuswriter.New(w)
	s.mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" || route == "/" {
		route = "other"
	}
	s.cfg.Observe(route, sw.Status(), time.Since(start))
}

// proxy hands a request to the named gate, without the /proxy/<name>
// prefix (HEAD requests reach it too: the mux routes HEAD to GET).
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h, ok := s.cfg.Proxies[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no proxy named %q", name), "code": "not_found"})
		return
	}
	http.StripPrefix("/proxy/"+name, h).ServeHTTP(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 when the store, the queue, every engine and the
// ReadyChecks answer, else 503 naming what fails.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	failing := map[string]string{}
	if err := s.cfg.Jobs.Ping(ctx); err != nil {
		failing["store"] = err.Error()
	}
	if s.cfg.Queue != nil {
		if err := s.cfg.Queue.Ping(ctx); err != nil {
			failing["queue"] = err.Error()
		}
	}
	for name, check := range s.cfg.ReadyChecks {
		if err := check(ctx); err != nil {
			failing[name] = err.Error()
		}
	}
	for _, e := range s.cfg.Engines.Status(ctx) {
		switch {
		case !e.Healthy:
			failing["engine "+e.Name] = e.Error
		case s.cfg.MaxSignatureAge > 0 && e.SignaturesUpdated != nil && time.Since(*e.SignaturesUpdated) > s.cfg.MaxSignatureAge:
			failing["engine "+e.Name] = fmt.Sprintf("signatures are %s old, more than max_signature_age %s",
				time.Since(*e.SignaturesUpdated).Round(time.Second), s.cfg.MaxSignatureAge)
		}
	}
	if len(failing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (s *Server) getEngines(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.cfg.Engines.Status(r.Context()))
	return nil
}
