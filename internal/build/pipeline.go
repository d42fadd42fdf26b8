package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/store"
)

// Scanning is the pipeline with the engines and store it runs on.
type Scanning struct {
	Engines  *EngineSet
	Store    store.Store // nil when built without one
	Pipeline *pipeline.Pipeline
}

// NewScanning builds the engines (only those named, if any), the store
// (when withStore) and the pipeline over them, from the configuration.
// Close releases what it built.
func NewScanning(ctx context.Context, cfg config.Config, only []string, withStore bool, obs pipeline.Observer, log *slog.Logger) (*Scanning, error) {
	s := &Scanning{}
	var (
		parts   EngineParts
		reports *blob.Dir
		err     error
	)
	if withStore {
		// Jobs are stored, so the reports they name are kept.
		if reports, err = Reports(cfg); err != nil {
			return nil, err
		}
		if reports != nil {
			parts.Reports = reports
		}
	}
	if s.Engines, err = EnginesWith(ctx, cfg.Engines, only, parts, log); err != nil {
		return nil, err
	}
	pc := pipeline.Config{Engines: s.Engines.List(), MaxSize: int64(cfg.Limits.MaxSize),
		MemLimit: int64(cfg.Limits.MemorySpool), EngineTimeout: cfg.Limits.EngineTimeout, Observer: obs, Logger: log}
	if withStore {
		if s.Store, err = Store(ctx, cfg, log.With("part", "store")); err != nil {
			s.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		pc.Store = s.Store
		if reports != nil {
			pc.Reports = reports
		}
	}
	if s.Pipeline, err = pipeline.New(pc); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store and the engines.
func (s *Scanning) Close() error {
	var errs []error
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	if s.Engines != nil {
		errs = append(errs, s.Engines.Close())
	}
	return errors.Join(errs...)
}
