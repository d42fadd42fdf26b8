package sweep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// listDir walks the folder and submits each regular file. Symbolic links
// are not followed (a link could lead out of the folder, or round in a
// loop), nor are devices, pipes and sockets read. A sub-folder that cannot
// be read counts as one error and the walk goes on; a root that cannot be
// read stops the sweep.
func (s *sweeper) listDir(ctx context.Context, submit func(func(context.Context) (outcome, int64)) error) error {
	root, err := filepath.Abs(s.cfg.Target.Dir)
	if err != nil {
		return fmt.Errorf("sweep: %s: %w", s.cfg.Target.Dir, err)
	}
	if _, err := os.Stat(root); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if p == root {
				return err
			}
			s.listed()
			s.log.LogAttrs(ctx, slog.LevelWarn, "sweep: folder unreadable", slog.String("path", p), slog.String("error", err.Error()))
			s.record(failed, 0)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone since its folder was read: nothing to sweep
		}
		if err != nil {
			s.listed()
			s.log.LogAttrs(ctx, slog.LevelWarn, "sweep: file unreadable", slog.String("path", p), slog.String("error", err.Error()))
			s.record(failed, 0)
			return nil
		}
		return submit(func(ctx context.Context) (outcome, int64) { return s.file(ctx, p, fi) })
	})
	if err != nil {
		return fmt.Errorf("sweep: walk %s: %w", root, err)
	}
	return nil
}

// file sweeps one local file, listed with fi (from lstat): it opens the
// file, checks that it is still what was listed, and hands it to the
// worker, which scans it, records the job and notifies.
func (s *sweeper) file(ctx context.Context, p string, fi fs.FileInfo) (outcome, int64) {
	id := FileJobID(p, fi.Size(), fi.ModTime())
	log := s.log.With("job", id, "path", p)
	existing, done, err := s.stored(ctx, id)
	if err != nil {
		return s.fail(ctx, log, "get job", err)
	}
	if done {
		return resumed, 0
	}
	job, err := s.prepare(ctx, existing, &scan.Job{
		ID: id, Status: scan.Queued, Name: filepath.Base(p), Size: fi.Size(), CreatedAt: time.Now().UTC(),
		Source: scan.Source{Kind: "sweep", Path: p},
	})
	if errors.Is(err, errTaken) {
		return resumed, 0
	}
	if err != nil {
		return s.fail(ctx, log, "create job", err)
	}
	// O_NONBLOCK: should a pipe have replaced the file since the walk,
	// opening it must not wait for a writer. Regular files ignore it.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.ended(ctx, log, job, s.worker.Finish(ctx, job, scan.Skipped, scan.ReasonNotFound, "the file no longer exists"))
	case err != nil:
		// Unreadable (permissions): an error verdict, never clean.
		if ferr := s.worker.Finish(ctx, job, scan.Error, scan.ReadReason(err), err.Error()); ferr != nil {
			return s.fail(ctx, log, "record unreadable file", ferr)
		}
		return s.fail(ctx, log, "open file", err)
	}
	defer f.Close()
	cur, err := f.Stat()
	if err != nil {
		return s.fail(ctx, log, "stat file", err)
	}
	// What was opened must be what was listed: not a link or another file
	// swapped in since, not content written since (its ID would be wrong).
	if !cur.Mode().IsRegular() || !os.SameFile(fi, cur) || cur.Size() != fi.Size() || !cur.ModTime().Equal(fi.ModTime()) {
		return s.ended(ctx, log, job, s.worker.Finish(ctx, job, scan.Skipped, scan.ReasonNotFound, "the file changed since it was listed; the next sweep scans it"))
	}
	return s.ended(ctx, log, job, s.worker.ProcessOnce(ctx, job, f))
}
