package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/rescan"
)

type rescanCmd struct {
	DataDir              string        `name:"data-dir" help:"Folder of the embedded store (default ./lazaret-data)." placeholder:"DIR"`
	OlderThan            time.Duration `name:"older-than" help:"Also rescan verdicts older than this (e.g. 720h)." placeholder:"DUR"`
	EngineVersionChanged bool          `name:"engine-version-changed" help:"Rescan verdicts made with other engine versions than the current ones."`
}

// run re-checks stored verdicts against the current engines.
func (c *rescanCmd) run(ctx context.Context, g *globals, env Env) int {
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	if c.DataDir != "" {
		cfg.DataDir = c.DataDir
	}
	if !c.EngineVersionChanged && c.OlderThan <= 0 {
		c.EngineVersionChanged = true // the common case: signatures changed
	}
	log := NewLogger(cfg, env.Stderr)
	sc, err := build.NewScanning(ctx, cfg, nil, true, nil, log)
	if err != nil {
		return errorf(env, err)
	}
	defer sc.Close()
	st, p := sc.Store, sc.Pipeline
	rc := rescan.Config{Jobs: st, Pipeline: p, VersionChanged: c.EngineVersionChanged, OlderThan: c.OlderThan, Logger: log}
	obj, err := build.Objects(ctx, cfg, log)
	if err != nil {
		return errorf(env, err)
	}
	if obj != nil {
		rc.Objects = obj
	}
	uploads, err := build.KeptUploads(cfg)
	if err != nil {
		return errorf(env, err)
	}
	if uploads != nil {
		// Prune first: an upload past its retention is not worth
		// rescanning, and a rescan is when someone looks at the folder.
		st, err := uploads.Prune(ctx, build.UploadRetention(cfg), time.Now())
		blob.LogPrune(ctx, log.With("part", "uploads"), st, err)
		rc.Uploads = uploads
	}
	notifier, err := build.NewNotifier(cfg, log)
	if err != nil {
		return errorf(env, err)
	}
	defer notifier.Close()
	if notifier != nil {
		rc.Changed = notifier.Changed
	}
	sum, err := rescan.Run(ctx, rc)
	fmt.Fprintf(env.Stdout, "%d jobs checked, %d selected, %d rescanned, %d changed, %d without content, %d errors\n",
		sum.Checked, sum.Selected, sum.Rescanned, sum.Changed, sum.NoContent, sum.Errors)
	if err != nil {
		return errorf(env, err)
	}
	if sum.Errors > 0 {
		return ExitError
	}
	return ExitClean
}
