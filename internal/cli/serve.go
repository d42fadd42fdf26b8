package cli

import (
	"context"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/console"
	"github.com/lazaret/lazaret/internal/server"
)

// shutdownGrace bounds a graceful stop: in-flight requests and scans get
// this long after SIGTERM (inside Kubernetes' default 30 s).
const shutdownGrace = 25 * time.Second

type serveCmd struct {
	Listen         string `help:"API address (default 127.0.0.1:8080)." placeholder:"ADDR"`
	DataDir        string `name:"data-dir" help:"Folder for the embedded store, queue and uploads (default ./lazaret-data)." placeholder:"DIR"`
	InsecureNoAuth bool   `name:"insecure-no-auth" help:"Allow listening beyond loopback with no API tokens."`
}

func (c *serveCmd) run(ctx context.Context, g *globals, env Env) int {
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	if c.Listen != "" {
		cfg.Listen = c.Listen
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	return runServer(ctx, cfg, env, server.Options{HTTP: true, Workers: true, InsecureNoAuth: c.InsecureNoAuth, Console: console.Handler()})
}

type workerCmd struct {
	DataDir string `name:"data-dir" help:"Folder for the embedded parts (default ./lazaret-data)." placeholder:"DIR"`
}

func (c *workerCmd) run(ctx context.Context, g *globals, env Env) int {
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	return runServer(ctx, cfg, env, server.Options{Workers: true})
}

func runServer(ctx context.Context, cfg config.Config, env Env, opts server.Options) int {
	opts.Logger = NewLogger(cfg, env.Stderr)
	if err := server.Run(ctx, cfg, opts, shutdownGrace); err != nil {
		return errorf(env, err)
	}
	return ExitClean
}
