// Package blob keeps samples' bytes between an asynchronous intake and the
// worker that scans them: the API stores an upload under its job ID, the
// worker reads it back and deletes it when the job is done. Dir is the
// embedded driver (a local folder); an S3 driver shares the interface.
//
// A Dir also holds the uploads kept by SHA-256 for rescans
// (keep_uploads); nothing deletes those one by one, so Dir.Prune removes
// the ones past a retention (see Retention).
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/lazaret/lazaret/internal/ctxio"
)

// ErrNotFound is returned for a key that holds nothing.
var ErrNotFound = errors.New("blob: not found")

// Store keeps blobs by key.
type Store interface {
	// Put stores r under key and returns the number of bytes written.
	// A blob is visible only once it is complete.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open returns the blob's bytes, or ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
}

// tempPrefix starts the names of Put's temporary files; no key can
// start with a dot, so they never shadow a blob.
const tempPrefix = ".put-"

// validKey keeps keys to names that cannot escape the folder.
var validKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Dir stores blobs as 0600 files in a folder.
type Dir struct {
	root string
	// mu orders Put's rename against Prune's removal, so that a blob
	// kept again while a prune runs in this process is not removed
	// just after it was refreshed.
	mu sync.Mutex
}

var _ Store = (*Dir)(nil)

// NewDir returns a Dir over root, creating it (0700) if needed.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Dir{root: root}, nil
}

func (d *Dir) path(key string) (string, error) {
	if !validKey.MatchString(key) {
		return "", fmt.Errorf("blob: invalid key %q", key)
	}
	return filepath.Join(d.root, key), nil
}

// Put writes to a temporary file and renames it into place, so a reader
// never sees half a blob. Putting a key again replaces the file, which
// also gives it a new modification time: Prune counts a blob's age from
// its last Put.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(d.root, tempPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("blob: put: %w", err)
	}
	n, err := io.Copy(f, ctxio.Reader(ctx, r))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		d.mu.Lock()
		err = os.Rename(f.Name(), p)
		d.mu.Unlock()
	}
	if err != nil {
		os.Remove(f.Name())
		return n, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return n, nil
}

// Open opens a blob.
func (d *Dir) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob: open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", key, err)
	}
	return f, nil
}

// Path returns the file holding a blob, for readers that use it in place
// (the pipeline hashes and scans a queued upload without copying it). The
// file stays until Delete; callers must not change it.
func (d *Dir) Path(key string) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("blob: %s: %w", key, ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("blob: %s: %w", key, err)
	}
	return p, nil
}

// Delete removes a blob.
func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}
