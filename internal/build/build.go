// Package build is the one place that turns configuration into running
// parts: it maps each engine's `type:` to its constructor and a store URL
// to its driver. Nothing registers itself; adding an engine type means
// adding a case here.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/engine/builtin"
	"github.com/lazaret/lazaret/internal/engine/clamd"
	"github.com/lazaret/lazaret/internal/engine/command"
	"github.com/lazaret/lazaret/internal/engine/sandbox"
	"github.com/lazaret/lazaret/internal/scan"
)

// EngineSet is the configured engines.
type EngineSet struct {
	engines []scan.Engine
	types   []string
}

// Engines builds the engines in cfgs. If only is not empty, just the
// engines with those names are built (an unknown name is an error).
// Sandbox engines built this way keep no reports; see EnginesWith.
func Engines(ctx context.Context, cfgs []config.Engine, only []string, log *slog.Logger) (*EngineSet, error) {
	return EnginesWith(ctx, cfgs, only, EngineParts{}, log)
}

// EngineParts are what engines use beyond their configuration.
type EngineParts struct {
	// Reports keeps the reports of sandbox engines (see Reports); nil
	// drops them.
	Reports sandbox.ReportStore
}

// EnginesWith is Engines with the parts the engines may need.
func EnginesWith(ctx context.Context, cfgs []config.Engine, only []string, parts EngineParts, log *slog.Logger) (*EngineSet, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, name := range only {
		if !slices.ContainsFunc(cfgs, func(e config.Engine) bool { return e.Name == name }) {
			return nil, fmt.Errorf("engine %q is not configured", name)
		}
	}
	set := &EngineSet{}
	for _, ec := range cfgs {
		if len(only) > 0 && !slices.Contains(only, ec.Name) {
			continue
		}
		e, err := newEngine(ctx, ec, parts, log.With("engine", ec.Name))
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("engine %q: %w", ec.Name, err)
		}
		set.engines = append(set.engines, e)
		set.types = append(set.types, ec.Type)
	}
	if len(set.engines) == 0 {
		return nil, errors.New("no engines configured")
	}
	return set, nil
}

func newEngine(ctx context.Context, ec config.Engine, parts EngineParts, log *slog.Logger) (scan.Engine, error) {
	switch ec.Type {
	case config.TypeClamd:
		addrs := ec.Addresses
		if ec.Address != "" {
			addrs = []string{ec.Address}
		}
		return clamd.New(clamd.Config{
			Name:           ec.Name,
			Addresses:      addrs,
			Timeout:        ec.Timeout,
			ConnectTimeout: ec.ConnectTimeout,
			MaxConns:       ec.MaxConnections,
			SignaturesDir:  ec.Signatures,
			ReloadInterval: ec.ReloadInterval,
			NoFDPass:       ec.FDPass != nil && !*ec.FDPass,
		}, log)
	case config.TypeBuiltin:
		return builtin.New(builtin.Config{
			Name:           ec.Name,
			SignaturesDir:  ec.Signatures,
			ReloadInterval: ec.ReloadInterval,
		}, log)
	case config.TypeCommand:
		cc := command.Config{
			Name:           ec.Name,
			Command:        ec.Command,
			CleanExitCodes: ec.CleanExitCodes,
			Timeout:        ec.Timeout,
			MaxOutput:      int64(ec.MaxOutput),
			Version:        ec.Version,
			VersionCommand: ec.VersionCommand,
			Stdin:          ec.Stdin,
			Env:            ec.Env,
			Dir:            ec.Dir,
		}
		if ec.InfectedWhen != nil {
			cc.InfectedWhen = command.InfectedWhen{ExitCodes: ec.InfectedWhen.ExitCodes, OutputMatches: ec.InfectedWhen.OutputMatches}
		}
		return command.New(cc, log)
	case config.TypeSandbox:
		return sandbox.New(ctx, sandboxConfig(ec, parts.Reports), log)
	}
	return nil, fmt.Errorf("unknown engine type %q", ec.Type)
}

// List returns the engines in configuration order.
func (s *EngineSet) List() []scan.Engine { return s.engines }

// Status asks every engine, concurrently, for its version and health.
func (s *EngineSet) Status(ctx context.Context) []scan.EngineStatus {
	out := make([]scan.EngineStatus, len(s.engines))
	var wg sync.WaitGroup
	for i, e := range s.engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			st := scan.EngineStatus{Name: e.Name(), Type: s.types[i], Healthy: true}
			if p, ok := e.(scan.Pinger); ok {
				if err := p.Ping(ctx); err != nil {
					st.Healthy, st.Error = false, err.Error()
				}
			}
			v, err := e.Version(ctx)
			if err != nil && st.Healthy {
				st.Healthy, st.Error = false, err.Error()
			}
			st.Version = v
			if d, ok := e.(scan.SignatureDater); ok && err == nil {
				if t, err := d.SignaturesUpdated(ctx); err == nil && !t.IsZero() {
					st.SignaturesUpdated = &t
				}
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return out
}

// Close closes the engines that hold resources.
func (s *EngineSet) Close() error {
	var errs []error
	for _, e := range s.engines {
		if c, ok := e.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
