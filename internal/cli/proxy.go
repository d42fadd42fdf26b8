package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/metrics"
	"github.com/lazaret/lazaret/internal/proxy"
	"github.com/lazaret/lazaret/internal/redact"
	"github.com/lazaret/lazaret/internal/scan"
)

type proxyCmd struct {
	Upstream       string   `required:"" help:"Base URL of the repository to front (https://files.example.org)." placeholder:"URL"`
	Listen         string   `default:"127.0.0.1:8081" help:"Address to serve on." placeholder:"ADDR"`
	DataDir        string   `name:"data-dir" help:"Folder for the store and the proxy's cache (default ./lazaret-data)." placeholder:"DIR"`
	PassThrough    []string `name:"pass-through" placeholder:"PREFIX" help:"Serve paths under PREFIX (index pages such as /simple/) without scanning them (repeatable)."`
	Host           []string `name:"host" sep:"none" placeholder:"PREFIX=URL" help:"Serve another upstream under PREFIX, e.g. /files/=https://files.pythonhosted.org (repeatable)."`
	RewriteLinks   bool     `name:"rewrite-links" help:"Rewrite absolute links to the upstream and to --host upstreams in HTML and JSON pages so that they lead through the proxy."`
	CacheMaxSize   string   `name:"cache-max-size" placeholder:"SIZE" help:"Bound on the cached bodies' total size, least recently used out first (default 10GiB); 0 for none."`
	MetricsListen  string   `name:"metrics-listen" placeholder:"ADDR" help:"Also serve Prometheus metrics at http://ADDR/metrics."`
	InsecureNoAuth bool     `name:"insecure-no-auth" help:"Allow listening beyond loopback (the proxy has no authentication)."`
}

// config turns the flags into the proxy's configuration, through the
// same mapping as a proxies: entry of the configuration file.
func (c *proxyCmd) config() (proxy.Config, error) {
	cp := config.Proxy{Upstream: config.Secret(c.Upstream), PassThrough: c.PassThrough, RewriteLinks: c.RewriteLinks}
	if u, err := url.Parse(c.Upstream); err == nil {
		cp.Name = u.Host
	}
	for _, h := range c.Host {
		prefix, u, ok := strings.Cut(h, "=")
		if !ok {
			return proxy.Config{}, fmt.Errorf("proxy: --host %q: want PREFIX=URL", h)
		}
		cp.Hosts = append(cp.Hosts, config.ProxyHost{Prefix: prefix, Upstream: config.Secret(u)})
	}
	if c.CacheMaxSize != "" {
		n, err := config.ParseByteSize(c.CacheMaxSize)
		if err != nil {
			return proxy.Config{}, fmt.Errorf("proxy: --cache-max-size: %w", err)
		}
		size := config.ByteSize(n)
		cp.CacheMaxSize = &size
	}
	return proxy.FromConfig(cp), nil
}

// lateEngines reports the engines' status once they are built: the
// metrics exist before them, to observe the pipeline they feed.
type lateEngines struct{ set *build.EngineSet }

func (l *lateEngines) Status(ctx context.Context) []scan.EngineStatus {
	if l.set == nil {
		return nil
	}
	return l.set.Status(ctx)
}

// run serves the store-scan-forward gate: nothing is served before it is
// scanned, infected content answers 409.
func (c *proxyCmd) run(ctx context.Context, g *globals, env Env) int {
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	for _, addr := range []string{c.Listen, c.MetricsListen} {
		if addr != "" && !c.InsecureNoAuth && !config.IsLoopback(addr) {
			return errorf(env, fmt.Errorf("proxy: %s is not loopback; the proxy has no authentication (pass --insecure-no-auth behind your own access control)", addr))
		}
	}
	pc, err := c.config()
	if err != nil {
		return errorf(env, err)
	}
	log := NewLogger(cfg, env.Stderr)
	engines := &lateEngines{}
	m := metrics.New(nil, engines)
	sc, err := build.NewScanning(ctx, cfg, nil, true, m, log)
	if err != nil {
		return errorf(env, err)
	}
	defer sc.Close()
	engines.set = sc.Engines
	if pc.Metrics, err = proxy.NewMetrics(m.Registerer()); err != nil {
		return errorf(env, err)
	}
	pc.CacheDir, pc.Scanner = filepath.Join(cfg.DataDir, "proxy"), sc.Pipeline
	pc.MaxSize, pc.Logger = int64(cfg.Limits.MaxSize), log.With("part", "proxy")
	px, err := proxy.New(pc)
	if err != nil {
		return errorf(env, err)
	}
	defer px.Close()

	errc := make(chan error, 2)
	serve := func(what, addr string, h http.Handler) (*http.Server, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() { errc <- srv.Serve(ln) }()
		log.Info("proxy serving", "what", what, "addr", ln.Addr().String(), "upstream", redact.URLs(c.Upstream))
		return srv, nil
	}
	var servers []*http.Server
	srv, err := serve("proxy", c.Listen, px)
	if err != nil {
		return errorf(env, err)
	}
	servers = append(servers, srv)
	if c.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		msrv, err := serve("metrics", c.MetricsListen, mux)
		if err != nil {
			srv.Close()
			return errorf(env, err)
		}
		servers = append(servers, msrv)
	}
	code := ExitClean
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			code = errorf(env, err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil && code == ExitClean {
			code = errorf(env, err)
		}
	}
	return code
}
