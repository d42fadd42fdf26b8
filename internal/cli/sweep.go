package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/progress"
	"github.com/lazaret/lazaret/internal/sweep"
)

type sweepCmd struct {
	Target       string   `arg:"" help:"s3://BUCKET[/PREFIX] or a folder."`
	UntaggedOnly bool     `name:"untagged-only" help:"Skip objects that already carry a verdict tag."`
	DataDir      string   `name:"data-dir" help:"Folder of the embedded store (default ./lazaret-data)." placeholder:"DIR"`
	Engine       []string `name:"engine" placeholder:"NAME" help:"Use only this configured engine (repeatable)."`
	Concurrency  int      `short:"j" default:"0" help:"Objects scanned at once (default: workers from the config)."`
}

// run sweeps a bucket prefix or a folder through the pipeline, with the
// same effects as event-driven scanning; a re-run resumes where an
// interrupted one stopped.
func (c *sweepCmd) run(ctx context.Context, g *globals, env Env) int {
	target, err := sweep.ParseTarget(c.Target)
	if err != nil {
		return errorf(env, err)
	}
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	log := NewLogger(cfg, env.Stderr)
	scanning, err := build.NewScanning(ctx, cfg, c.Engine, true, nil, log)
	if err != nil {
		return errorf(env, err)
	}
	defer scanning.Close()
	st, p := scanning.Store, scanning.Pipeline
	notifier, err := build.NewNotifier(cfg, log)
	if err != nil {
		return errorf(env, err)
	}
	defer notifier.Close()
	sc := sweep.Config{Target: target, Pipeline: p, Jobs: st, UntaggedOnly: c.UntaggedOnly,
		Concurrency: c.Concurrency, Logger: log}
	if notifier != nil {
		sc.Notify = notifier.Completed
	}
	if sc.Concurrency <= 0 {
		sc.Concurrency = cfg.Workers
	}
	if target.IsS3() {
		obj, err := build.Objects(ctx, cfg, log)
		if err != nil {
			return errorf(env, err)
		}
		if obj == nil {
			return errorf(env, errors.New("sweep: s3.endpoint is not configured"))
		}
		lister := sweep.NewS3Lister(obj)
		sc.Lister, sc.Objects, sc.Buckets = lister, obj, cfg.Buckets
	}
	bar := progress.New(env.Stderr, isTerminal(env, env.Stderr))
	if bar != nil {
		sc.Progress = bar
	}
	sum, err := sweep.Run(ctx, sc)
	bar.Stop()
	fmt.Fprintf(env.Stdout, "%s: %d listed, %d scanned (%d clean, %d infected, %d not scannable), %d skipped (%d done before, %d tagged, %d out of scope, %d gone), %d errors, %d unfinished\n",
		target, sum.Listed, sum.Scanned, sum.Clean, sum.Infected, sum.Unscannable, sum.Skipped, sum.Resumed, sum.Tagged,
		sum.OutOfScope, sum.Gone, sum.Errors, sum.Unfinished)
	switch {
	case err != nil:
		return errorf(env, err)
	case sum.Infected > 0:
		return ExitInfected
	case sum.Errors > 0 || sum.Unscannable > 0 || sum.Unfinished > 0:
		return ExitError
	}
	return ExitClean
}
