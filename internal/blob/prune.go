package blob

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Retention says which blobs Prune removes. The zero value keeps every
// blob.
type Retention struct {
	// MaxAge removes blobs whose last Put is older than this; 0 keeps
	// them whatever their age.
	MaxAge time.Duration
	// MaxSize removes the least recently put blobs until the others
	// add up to at most this many bytes; 0 means no cap. A single blob
	// larger than the cap is removed too.
	MaxSize int64
}

// PruneStats counts what one Prune did.
type PruneStats struct {
	// Removed counts the blobs removed, with the leftovers of
	// interrupted Puts, and RemovedBytes their sizes.
	Removed      int
	RemovedBytes int64
	// Kept counts the blobs left, and KeptBytes their sizes.
	Kept      int
	KeptBytes int64
}

// staleTemp is the age past which a temporary file is the leftover of a
// Put that never finished (its process was killed): a Put in progress
// writes to its file, which keeps the file's modification time fresh.
const staleTemp = time.Hour

// pruneBatch bounds the directory entries read at once, so that a folder
// of many blobs is not listed into memory whole when only MaxAge is set.
const pruneBatch = 512

// entry is a blob that survived the age pass, for the size pass.
type entry struct {
	name string
	mod  time.Time
	size int64
}

// Prune removes the blobs that r does not keep, as of now, and the
// temporary files of interrupted Puts. Files that are not blobs (any name
// Put cannot have made) and folders are left alone.
//
// A blob Put again while Prune runs in the same process is kept: Prune
// checks the modification time again just before removing, under the
// lock Put renames with. Another process's Put can still land between
// that check and the removal; the blob is then gone until its content is
// kept again, and a rescan counts its job as having no content.
func (d *Dir) Prune(ctx context.Context, r Retention, now time.Time) (PruneStats, error) {
	var st PruneStats
	if r.MaxAge < 0 || r.MaxSize < 0 {
		return st, fmt.Errorf("blob: prune: negative retention (max age %v, max size %d)", r.MaxAge, r.MaxSize)
	}
	f, err := os.Open(d.root)
	if err != nil {
		return st, fmt.Errorf("blob: prune: %w", err)
	}
	defer f.Close()

	var (
		errs []error
		kept []entry // filled only for the size pass
	)
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("blob: prune: %w", err)
		}
		ents, rerr := f.ReadDir(pruneBatch)
		for _, e := range ents {
			name := e.Name()
			temp := strings.HasPrefix(name, tempPrefix)
			if !e.Type().IsRegular() || (!temp && !validKey.MatchString(name)) {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // removed since it was listed
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("blob: prune: %w", err))
				continue
			}
			// drop removes the file unless it changed since it was
			// listed, and says whether it is gone.
			drop := func() bool {
				removed, err := d.removeUnchanged(name, info.ModTime())
				if err != nil {
					errs = append(errs, err)
				}
				if removed {
					st.Removed++
					st.RemovedBytes += info.Size()
				}
				return removed
			}
			age := now.Sub(info.ModTime())
			if temp {
				// Left by a Put that died; a younger one may be in progress.
				if age > staleTemp {
					drop()
				}
				continue
			}
			if r.MaxAge > 0 && age > r.MaxAge && drop() {
				continue
			}
			st.Kept++
			st.KeptBytes += info.Size()
			if r.MaxSize > 0 {
				kept = append(kept, entry{name: name, mod: info.ModTime(), size: info.Size()})
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return st, fmt.Errorf("blob: prune: list %s: %w", d.root, rerr)
		}
	}

	if r.MaxSize > 0 && st.KeptBytes > r.MaxSize {
		// Oldest first; the name breaks ties so that the order (and a
		// test) does not depend on the listing's.
		slices.SortFunc(kept, func(a, b entry) int {
			return cmp.Or(a.mod.Compare(b.mod), strings.Compare(a.name, b.name))
		})
		for _, e := range kept {
			if st.KeptBytes <= r.MaxSize {
				break
			}
			if err := ctx.Err(); err != nil {
				return st, fmt.Errorf("blob: prune: %w", err)
			}
			removed, err := d.removeUnchanged(e.name, e.mod)
			if err != nil {
				errs = append(errs, err)
			}
			if removed {
				st.Removed++
				st.RemovedBytes += e.size
				st.Kept--
				st.KeptBytes -= e.size
			}
		}
	}
	return st, errors.Join(errs...)
}

// removeUnchanged removes the file name if its modification time is still
// mod, and reports whether it did. A Put since the file was listed gave
// it a new time: it was just kept again, so it stays.
func (d *Dir) removeUnchanged(name string, mod time.Time) (bool, error) {
	p := filepath.Join(d.root, name)
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob: prune %s: %w", name, err)
	}
	if !fi.ModTime().Equal(mod) {
		return false, nil
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("blob: prune %s: %w", name, err)
	}
	return true, nil
}

// PruneEvery runs Prune at once and then every interval (an hour if not
// positive) until ctx ends. It logs what each round removed and any
// failure; the next round tries again.
func (d *Dir) PruneEvery(ctx context.Context, r Retention, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := d.Prune(ctx, r, time.Now())
		if ctx.Err() != nil {
			return
		}
		LogPrune(ctx, log, st, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LogPrune logs the outcome of a Prune: a warning on failure, one info
// line when something was removed, nothing otherwise (an hourly "nothing
// to do" is noise).
func LogPrune(ctx context.Context, log *slog.Logger, st PruneStats, err error) {
	attrs := []slog.Attr{slog.Int("removed", st.Removed), slog.Int64("removed_bytes", st.RemovedBytes),
		slog.Int("kept", st.Kept), slog.Int64("kept_bytes", st.KeptBytes)}
	switch {
	case err != nil:
		log.LogAttrs(ctx, slog.LevelWarn, "pruning blobs failed", append(attrs, slog.String("error", err.Error()))...)
	case st.Removed > 0:
		log.LogAttrs(ctx, slog.LevelInfo, "blobs pruned", attrs...)
	}
}
