package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/lazaret/lazaret/internal/build"
)

type enginesCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
}

// run prints every configured engine; it exits 2 when one is unhealthy.
func (c *enginesCmd) run(ctx context.Context, g *globals, env Env) int {
	cfg, err := g.loadConfig(env)
	if err != nil {
		return errorf(env, err)
	}
	engines, err := build.Engines(ctx, cfg.Engines, nil, NewLogger(cfg, env.Stderr))
	if err != nil {
		return errorf(env, err)
	}
	defer engines.Close()
	st := engines.Status(ctx)
	if c.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tVERSION\tHEALTHY")
		for _, s := range st {
			health := "yes"
			if !s.Healthy {
				health = "no: " + s.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Type, s.Version, health)
		}
		tw.Flush()
	}
	for _, s := range st {
		if !s.Healthy {
			return ExitError
		}
	}
	return ExitClean
}
