package proxy

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxies' Prometheus collectors (prefix lazaret_proxy_).
// One Metrics serves every proxy of a process; each labels its series with
// its Config.Name (label proxy).
//
//	lazaret_proxy_requests_total{proxy,code}           answers by HTTP status
//	lazaret_proxy_cache_requests_total{proxy,result}   answered from the cache (hit) or after an upstream fetch (miss)
//	lazaret_proxy_cache_bytes{proxy}                   bytes of cached bodies
//	lazaret_proxy_cache_files{proxy}                   cached bodies
//	lazaret_proxy_cache_max_bytes{proxy}               the bound on cache_bytes (0: none)
//	lazaret_proxy_cache_evictions_total{proxy}         bodies evicted to stay within the bound
//	lazaret_proxy_cache_evicted_bytes_total{proxy}     their bytes
//	lazaret_proxy_upstream_errors_total{proxy,code}    upstream fetches that brought no body, by error code
type Metrics struct {
	requests       *prometheus.CounterVec
	cache          *prometheus.CounterVec
	bytes          *prometheus.GaugeVec
	files          *prometheus.GaugeVec
	maxBytes       *prometheus.GaugeVec
	evictions      *prometheus.CounterVec
	evictedBytes   *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
}

// NewMetrics creates the proxies' collectors and registers them with reg;
// a nil reg leaves them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_proxy_requests_total", Help: "Proxy answers by HTTP status code.",
		}, []string{"proxy", "code"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_proxy_cache_requests_total", Help: "Proxy requests answered from the cache (hit) or after an upstream fetch (miss).",
		}, []string{"proxy", "result"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lazaret_proxy_cache_bytes", Help: "Bytes of bodies in the proxy's cache.",
		}, []string{"proxy"}),
		files: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lazaret_proxy_cache_files", Help: "Bodies in the proxy's cache.",
		}, []string{"proxy"}),
		maxBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lazaret_proxy_cache_max_bytes", Help: "The bound on the proxy cache's bytes (0: none).",
		}, []string{"proxy"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_proxy_cache_evictions_total", Help: "Bodies evicted from the proxy's cache to stay within its bound.",
		}, []string{"proxy"}),
		evictedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_proxy_cache_evicted_bytes_total", Help: "Bytes of the bodies evicted from the proxy's cache.",
		}, []string{"proxy"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_proxy_upstream_errors_total", Help: "Upstream fetches that brought no body, by error code.",
		}, []string{"proxy", "code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.cache, m.bytes, m.files, m.maxBytes, m.evictions, m.evictedBytes, m.upstreamErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxy: metrics: %w", err)
		}
	}
	return m, nil
}

// proxyMetrics are one proxy's series, resolved once so that the request
// path does not look labels up.
type proxyMetrics struct {
	name      string
	requests  *prometheus.CounterVec
	codes     map[int]prometheus.Counter // read-only after creation
	hit, miss prometheus.Counter
	bytes     prometheus.Gauge
	files     prometheus.Gauge
	evictions prometheus.Counter
	// evictedBytes counts the bytes of evicted bodies.
	evictedBytes prometheus.Counter
	upstream     *prometheus.CounterVec
}

// commonCodes are the statuses whose series are resolved ahead.
var commonCodes = []int{200, 206, 304, 400, 404, 405, 409, 412, 416, 502, 503, 504}

func (m *Metrics) forProxy(name string, maxBytes int64) *proxyMetrics {
	pm := &proxyMetrics{
		name:         name,
		requests:     m.requests,
		codes:        map[int]prometheus.Counter{},
		hit:          m.cache.WithLabelValues(name, "hit"),
		miss:         m.cache.WithLabelValues(name, "miss"),
		bytes:        m.bytes.WithLabelValues(name),
		files:        m.files.WithLabelValues(name),
		evictions:    m.evictions.WithLabelValues(name),
		evictedBytes: m.evictedBytes.WithLabelValues(name),
		upstream:     m.upstreamErrors,
	}
	for _, c := range commonCodes {
		pm.codes[c] = m.requests.WithLabelValues(name, strconv.Itoa(c))
	}
	m.maxBytes.WithLabelValues(name).Set(float64(max(maxBytes, 0)))
	return pm
}

// answered counts an answer with status code.
func (pm *proxyMetrics) answered(code int) {
	if c, ok := pm.codes[code]; ok {
		c.Inc()
		return
	}
	pm.requests.WithLabelValues(pm.name, strconv.Itoa(code)).Inc()
}

// upstreamError counts a fetch that failed with the error code.
func (pm *proxyMetrics) upstreamError(code string) {
	pm.upstream.WithLabelValues(pm.name, code).Inc()
}
