package build

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/engine/sandbox"
)

// Reports opens the folder of sandbox engines' reports
// (DATA_DIR/reports), where they are kept by SHA-256 for
// GET /v1/jobs/{id}/report, or returns nil when no sandbox engine is
// configured.
func Reports(cfg config.Config) (*blob.Dir, error) {
	for _, e := range cfg.Engines {
		if e.Type == config.TypeSandbox {
			d, err := blob.NewDir(filepath.Join(cfg.DataDir, "reports"))
			if err != nil {
				return nil, fmt.Errorf("reports: %w", err)
			}
			return d, nil
		}
	}
	return nil, nil
}

// reportPruneInterval is how often a running server prunes the sandbox
// engines' reports; their age limit is counted in days.
const reportPruneInterval = time.Hour

// PruneReports prunes the reports in d that are older than
// keep_reports_for (0 keeps them, and only clears the leftovers of
// interrupted writes) at once and then every reportPruneInterval, until
// ctx ends. A report's age counts from the last time an analyzer wrote it:
// the same report written again is kept again. Run it in its own
// goroutine.
func PruneReports(ctx context.Context, d *blob.Dir, cfg config.Config, log *slog.Logger) {
	d.PruneEvery(ctx, blob.Retention{MaxAge: cfg.KeepReportsFor}, reportPruneInterval, log)
}

// sandboxConfig maps a sandbox engine's configuration to the engine's.
func sandboxConfig(ec config.Engine, reports sandbox.ReportStore) sandbox.Config {
	sc := sandbox.Config{
		Name:          ec.Name,
		Command:       ec.Command,
		Isolation:     ec.Isolation,
		Timeout:       ec.Timeout,
		Workers:       ec.Workers,
		MaxSize:       int64(ec.MaxSize),
		Mountpoint:    ec.Mountpoint,
		InputFilename: ec.InputFilename,
		User:          ec.User,
		ROBinds:       ec.ROBinds,
		Env:           ec.Env,
		Version:       ec.Version,
		OnDemand:      ec.OnDemand,
		Reports:       reports,
	}
	if l := ec.Limits; l != nil {
		sc.Limits = sandbox.Limits{Memory: int64(l.Memory), CPUTime: l.CPUTime, FileSize: int64(l.FileSize),
			Processes: l.Processes, TmpSize: int64(l.TmpSize)}
	}
	if r := ec.Report; r != nil {
		sc.Report = sandbox.ReportConfig{MaxSize: int64(r.MaxSize), ContentType: r.ContentType,
			Optional: r.Required != nil && !*r.Required, SignatureField: r.SignatureField}
	}
	return sc
}
