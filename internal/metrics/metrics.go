// Package metrics exposes lazaret's Prometheus metrics (prefix lazaret_):
// scans by verdict, reason and engine, scan durations, bytes scanned,
// verdict cache hits and misses, queue depth and redeliveries, engine
// health and signature age, and HTTP requests by route and code.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
)

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg          *prometheus.Registry
	scans        *prometheus.CounterVec
	engineScans  *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	engineDur    *prometheus.HistogramVec
	bytes        prometheus.Counter
	cache        *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// QueueStats reports the queue's depth.
type QueueStats interface {
	Stats(ctx context.Context) (queue.Stats, error)
}

// EngineStatus reports the engines' health.
type EngineStatus interface {
	Status(ctx context.Context) []scan.EngineStatus
}

// New registers lazaret's metrics (and Go/process metrics) in a new
// registry. q and engines may be nil.
func New(q QueueStats, engines EngineStatus) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	scanBuckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	m.scans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lazaret_scans_total", Help: "Finished scans by verdict and reason.",
	}, []string{"verdict", "reason", "cached"})
	m.engineScans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lazaret_engine_scans_total", Help: "Engine scans by engine, verdict and reason.",
	}, []string{"engine", "verdict", "reason"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lazaret_scan_duration_seconds", Help: "Time from sample in to verdict, by verdict.", Buckets: scanBuckets,
	}, []string{"verdict"})
	m.engineDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lazaret_engine_scan_duration_seconds", Help: "One engine's scan time.", Buckets: scanBuckets,
	}, []string{"engine"})
	m.bytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lazaret_scanned_bytes_total", Help: "Bytes of samples scanned (cache hits excluded).",
	})
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lazaret_verdict_cache_total", Help: "Verdict cache lookups by result (hit, miss).",
	}, []string{"result"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lazaret_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lazaret_http_request_duration_seconds", Help: "HTTP request time by route.", Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	m.reg.MustRegister(m.scans, m.engineScans, m.duration, m.engineDur, m.bytes, m.cache, m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if q != nil {
		m.reg.MustRegister(&queueCollector{q: q})
	}
	if engines != nil {
		m.reg.MustRegister(&engineCollector{e: engines})
	}
	return m
}

// DeliveryCounter counts the notification outbox by state.
type DeliveryCounter interface {
	CountDeliveries(ctx context.Context) (map[string]int64, error)
}

// WatchDeliveries exports the outbox's counts as
// lazaret_notify_deliveries{state}, read at scrape time.
func (m *Metrics) WatchDeliveries(d DeliveryCounter) {
	m.reg.MustRegister(&deliveryCollector{d: d})
}

var deliveriesDesc = prometheus.NewDesc("lazaret_notify_deliveries", "Webhook deliveries in the outbox by state (pending, delivered, failed).", []string{"state"}, nil)

type deliveryCollector struct{ d DeliveryCounter }

func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deliveriesDesc }

func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	counts, err := c.d.CountDeliveries(ctx)
	if err != nil {
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(deliveriesDesc, prometheus.GaugeValue, float64(n), state)
	}
}

// Registerer is the registry's, for parts that bring collectors of their
// own (the proxies').
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ScanDone records a finished job; it implements pipeline.Observer.
func (m *Metrics) ScanDone(job *scan.Job, d time.Duration) {
	cached := strconv.FormatBool(job.Cached)
	m.scans.WithLabelValues(string(job.Verdict), string(job.Reason), cached).Inc()
	m.duration.WithLabelValues(string(job.Verdict)).Observe(d.Seconds())
	if job.SHA256 == "" {
		return // never spooled: nothing looked up, nothing scanned
	}
	if job.Cached {
		m.cache.WithLabelValues("hit").Inc()
		return
	}
	m.cache.WithLabelValues("miss").Inc()
	m.bytes.Add(float64(job.Size))
	for _, e := range job.Engines {
		m.engineScans.WithLabelValues(e.Name, string(e.Verdict), string(e.Reason)).Inc()
		m.engineDur.WithLabelValues(e.Name).Observe(float64(e.DurationMS) / 1000)
	}
}

// ObserveHTTP records one request.
func (m *Metrics) ObserveHTTP(route string, code int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

var (
	queueDepthDesc = prometheus.NewDesc("lazaret_queue_depth", "Jobs in the queue by state (pending, in_flight).", []string{"state"}, nil)
	queueRedeliv   = prometheus.NewDesc("lazaret_queue_redelivered", "In-flight jobs delivered more than once.", nil, nil)
	queueUp        = prometheus.NewDesc("lazaret_queue_up", "1 if the queue answered the last scrape.", nil, nil)
	engineUpDesc   = prometheus.NewDesc("lazaret_engine_up", "1 if the engine answers.", []string{"engine", "type", "version"}, nil)
	engineSigAge   = prometheus.NewDesc("lazaret_engine_signature_age_seconds", "Time since the engine's signatures last changed, where it knows.", []string{"engine"}, nil)
)

// queueCollector asks the queue at scrape time, so the numbers are never
// stale.
type queueCollector struct{ q QueueStats }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueRedeliv
	ch <- queueUp
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := c.q.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.Pending), "pending")
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.InFlight), "in_flight")
	ch <- prometheus.MustNewConstMetric(queueRedeliv, prometheus.GaugeValue, float64(st.Redelivered))
}

type engineCollector struct{ e EngineStatus }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- engineUpDesc
	ch <- engineSigAge
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.e.Status(ctx) {
		v := 0.0
		if s.Healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(engineUpDesc, prometheus.GaugeValue, v, s.Name, s.Type, s.Version)
		if s.SignaturesUpdated != nil {
			ch <- prometheus.MustNewConstMetric(engineSigAge, prometheus.GaugeValue, time.Since(*s.SignaturesUpdated).Seconds(), s.Name)
		}
	}
}
