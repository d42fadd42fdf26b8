package build

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/config"
)

// UploadPruneInterval is how often a running server prunes its kept
// uploads. The age limit is counted in days, so an hour late is nothing;
// the size cap may be overshot by an hour of uploads.
const UploadPruneInterval = time.Hour

// KeptUploads opens the folder of kept uploads (DATA_DIR/uploads), or
// returns nil when keep_uploads is off.
func KeptUploads(cfg config.Config) (*blob.Dir, error) {
	if !cfg.KeepUploads {
		return nil, nil
	}
	d, err := blob.NewDir(filepath.Join(cfg.DataDir, "uploads"))
	if err != nil {
		return nil, fmt.Errorf("keep_uploads: %w", err)
	}
	return d, nil
}

// UploadRetention is the retention of kept uploads that cfg asks for
// (keep_uploads_for, keep_uploads_max_size).
func UploadRetention(cfg config.Config) blob.Retention {
	return blob.Retention{MaxAge: cfg.KeepUploadsFor, MaxSize: int64(cfg.KeepUploadsMaxSize)}
}

// PruneUploads prunes the kept uploads in d at once and then every
// UploadPruneInterval, until ctx ends. Run it in its own goroutine.
func PruneUploads(ctx context.Context, d *blob.Dir, cfg config.Config, log *slog.Logger) {
	d.PruneEvery(ctx, UploadRetention(cfg), UploadPruneInterval, log)
}
