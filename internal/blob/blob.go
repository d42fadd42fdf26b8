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
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/ctxio"
)

// ErrNotFound is returned for a key that holds nothing.
var ErrNotFound = errors.New("blob: not found")

// Store keeps blobs by key.
type Store interface {
	// Put stores r under key and returns the number of bytes r held,
	// having read it to its end. A blob is visible only once it is
	// complete.
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
	// mu orders Put's rename and the touches of Put and Touch against
	// Prune's removal, so that a blob kept again while a prune runs in
	// this process is not removed just after it was refreshed.
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
// never sees half a blob. Putting a key again replaces the file, unless
// it already holds exactly r's bytes: then the file is left as it is and
// only its modification time is set to now, since Prune counts a blob's
// age from its last Put. Kept uploads, keyed by their SHA-256, arrive
// again and again with the same content; rewriting and syncing each one
// whole would be a write per upload for nothing.
//
// Either way r is read to its end and the count of its bytes returned:
// callers hash the stream through a tee while it is stored.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	r = ctxio.Reader(ctx, r)
	old, err := os.Open(p)
	if err != nil {
		// Nothing there yet, or nothing readable: writing the blob is
		// what settles it (a rename replaces an unreadable file).
		return d.write(key, p, r)
	}
	defer old.Close()
	n, differs, err := compare(old, r)
	if err != nil {
		return n, fmt.Errorf("blob: put %s: %w", key, err)
	}
	if differs != nil {
		// The file matched r's first n bytes, read already: they come
		// from the file, the rest from r.
		return d.write(key, p, io.MultiReader(io.NewSectionReader(old, 0, n), differs))
	}
	d.mu.Lock()
	err = os.Chtimes(p, time.Time{}, time.Now())
	d.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		// Removed (pruned) while it was compared: write it again from
		// the bytes just found equal to r's, still readable through old.
		return d.write(key, p, io.NewSectionReader(old, 0, n))
	}
	if err != nil {
		return n, fmt.Errorf("blob: put %s: touch: %w", key, err)
	}
	return n, nil
}

// compareChunk is how much of r and of the stored file compare reads at a
// time.
const compareChunk = 64 << 10

// compare reads r while comparing it with old from its start. When the
// two are the same, it returns r's length and a nil rest, r read to its
// end. Else it stops where they part and returns n, the length of the
// prefix they share (read from both), and rest, the remainder of r's
// bytes from there on: r's bytes are exactly old's first n and then rest.
// err is r's read error; a read error of old counts as a difference, for
// a blob that cannot be read is to be rewritten.
func compare(old, r io.Reader) (n int64, rest io.Reader, err error) {
	buf, oldBuf := make([]byte, compareChunk), make([]byte, compareChunk)
	for {
		k, rerr := fill(r, buf)
		if k > 0 {
			if m, _ := io.ReadFull(old, oldBuf[:k]); m < k || !bytes.Equal(buf[:k], oldBuf[:k]) {
				return n, io.MultiReader(bytes.NewReader(buf[:k]), r), nil
			}
			n += int64(k)
		}
		switch {
		case rerr == io.EOF:
			// r has ended; old must end here too.
			if m, _ := io.ReadFull(old, oldBuf[:1]); m > 0 {
				return n, bytes.NewReader(nil), nil // r is a prefix of old
			}
			return n, nil, nil
		case rerr != nil:
			return n, nil, rerr
		}
	}
}

// fill reads r into b until b is full or r fails. Unlike io.ReadFull it
// returns r's own error, so that a stream that fails with
// io.ErrUnexpectedEOF (an upload cut off) is not taken for one that
// ended.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// write stores r's bytes as the blob at p, through a temporary file
// renamed into place.
func (d *Dir) write(key, p string, r io.Reader) (int64, error) {
	f, err := os.CreateTemp(d.root, tempPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("blob: put: %w", err)
	}
	n, err := io.Copy(f, r)
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
//
// The stat before the caller's own open is kept on purpose: it is what
// lets the worker end a job whose sample is gone with ErrNotFound ("no
// longer stored", not_found) before running the pipeline, whose error
// verdict would requeue the job for retries that cannot find it either.
// A blob deleted between this stat and the open still reads as not found
// (spool.File's error wraps fs.ErrNotExist). Dropping the stat would take
// an open file handed from here to spool instead of a path, a change to
// the worker and the pipeline's Request.
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

// Touch marks a blob as used now, so that pruning by age keeps it; a blob
// that is not there is an error wrapping ErrNotFound.
func (d *Dir) Touch(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	// Under mu, as Put's touch: a prune that listed the blob before
	// then leaves it (removeUnchanged sees the new time).
	d.mu.Lock()
	err = os.Chtimes(p, time.Time{}, time.Now())
	d.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob: touch %s: %w", key, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("blob: touch %s: %w", key, err)
	}
	return nil
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
