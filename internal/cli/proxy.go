package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/proxy"
	"github.com/lazaret/lazaret/internal/server"
)

type proxyCmd struct {
	Upstream       string   `required:"" help:"Base URL of the repository to front (https://files.example.org)." placeholder:"URL"`
	Listen         string   `default:"127.0.0.1:8081" help:"Address to serve on." placeholder:"ADDR"`
	DataDir        string   `name:"data-dir" help:"Folder for the store and the proxy's cache (default ./lazaret-data)." placeholder:"DIR"`
	PassThrough    []string `name:"pass-through" placeholder:"PREFIX" help:"Serve paths under PREFIX (index pages such as /simple/) without scanning them (repeatable)."`
	InsecureNoAuth bool     `name:"insecure-no-auth" help:"Allow listening beyond loopback (the proxy has no authentication)."`
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
	if !c.InsecureNoAuth && !server.IsLoopback(c.Listen) {
		return errorf(env, fmt.Errorf("proxy: --listen %s is not loopback; the proxy has no authentication (pass --insecure-no-auth behind your own access control)", c.Listen))
	}
	log := newLogger(cfg, env.Stderr)
	sc, err := build.NewScanning(ctx, cfg, nil, true, nil, log)
	if err != nil {
		return errorf(env, err)
	}
	defer sc.Close()
	p := sc.Pipeline
	pc := proxy.Config{Upstream: c.Upstream, CacheDir: filepath.Join(cfg.DataDir, "proxy"), Scanner: p,
		MaxSize: int64(cfg.Limits.MaxSize), Logger: log.With("part", "proxy")}
	for _, prefix := range c.PassThrough {
		pc.PassThrough = append(pc.PassThrough, proxy.Rule{PathPrefix: prefix, Scan: false})
	}
	px, err := proxy.New(pc)
	if err != nil {
		return errorf(env, err)
	}
	defer px.Close()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return errorf(env, err)
	}
	srv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("proxy serving", "addr", ln.Addr().String(), "upstream", c.Upstream)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return errorf(env, err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return errorf(env, err)
	}
	return ExitClean
}
