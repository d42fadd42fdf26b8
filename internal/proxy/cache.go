package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// The cache folder:
//
//	blobs/ab/abcdef…   bodies by SHA-256, 0600, written once
//	index/<sha256 of the URL>.json   one small entry per URL
//	tmp/               bodies being fetched; emptied at start
//
// A body is written under a random name in tmp and renamed into blobs only
// after it was read to its end, its length checked and synced, so a blob
// is never partial. The index files are written the same way.

// maxIndexFile bounds what is read of one index file.
const maxIndexFile = 1 << 20

// entry is what the proxy knows about one upstream URL.
type entry struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Header holds the upstream headers that are passed on.
	Header map[string]string `json:"header"`
	// Blob says the bytes are in the cache. Infected bytes are not kept.
	Blob bool `json:"blob"`
	// Verdict is the last verdict for the bytes ("" when not scanned).
	// It is informational: before cached bytes are served the verdict is
	// confirmed under the current engine versions.
	Verdict   scan.Verdict `json:"verdict,omitempty"`
	Reason    scan.Reason  `json:"reason,omitempty"`
	Signature string       `json:"signature,omitempty"`
	Job       string       `json:"job,omitempty"`
	// Fetched is when the bytes were fetched; Validated when the upstream
	// last confirmed them (a fetch or a 304).
	Fetched   time.Time `json:"fetched"`
	Validated time.Time `json:"validated"`
}

func (e *entry) contentType() string { return e.Header["Content-Type"] }

// cache is the folder and the in-memory index over it.
type cache struct {
	blobs, index, tmp string
	log               *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry // by URL
	refs    map[string]int    // entries with Blob set, by SHA-256
}

func openCache(dir string, log *slog.Logger) (*cache, error) {
	c := &cache{blobs: filepath.Join(dir, "blobs"), index: filepath.Join(dir, "index"), tmp: filepath.Join(dir, "tmp"),
		log: log, entries: map[string]*entry{}, refs: map[string]int{}}
	for _, d := range []string{dir, c.blobs, c.index, c.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	// Leftovers of fetches cut short by a crash.
	if des, err := os.ReadDir(c.tmp); err == nil {
		for _, de := range des {
			os.Remove(filepath.Join(c.tmp, de.Name()))
		}
	}
	des, err := os.ReadDir(c.index)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		e, err := readEntry(filepath.Join(c.index, de.Name()))
		if err != nil {
			// A broken entry only costs a fetch.
			log.Warn("proxy cache entry unreadable", "file", de.Name(), "error", err.Error())
			os.Remove(filepath.Join(c.index, de.Name()))
			continue
		}
		if e.Blob {
			if fi, err := os.Stat(c.blobPath(e.SHA256)); err != nil || fi.Size() != e.Size {
				e.Blob = false
			} else {
				c.refs[e.SHA256]++
			}
		}
		c.entries[e.URL] = e
	}
	c.sweep()
	return c, nil
}

func readEntry(name string) (*entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var e entry
	dec := json.NewDecoder(io.LimitReader(f, maxIndexFile))
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	if e.URL == "" || (e.Blob && !validSHA(e.SHA256)) {
		return nil, errors.New("incomplete entry")
	}
	return &e, nil
}

// sweep removes blobs no entry refers to: bodies replaced upstream, or
// left by a crash between the rename and the index write.
func (c *cache) sweep() {
	filepath.WalkDir(c.blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if c.refs[d.Name()] == 0 {
			os.Remove(p)
		}
		return nil
	})
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func (c *cache) blobPath(sum string) string { return filepath.Join(c.blobs, sum[:2], sum) }

func (c *cache) indexPath(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.index, hex.EncodeToString(h[:])+".json")
}

// get returns a copy of the entry for key.
func (c *cache) get(key string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return entry{}, false
	}
	return *e, true
}

// put records e, on disk first so that a restart keeps it. A blob no
// entry refers to any more is removed.
func (c *cache) put(e entry) error {
	b, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("cache: encode entry: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	werr := writeAtomic(c.tmp, c.indexPath(e.URL), b)
	// The in-memory index is updated even when the file is not: serving
	// stays right, only a restart would forget.
	old := c.entries[e.URL]
	ne := e
	c.entries[e.URL] = &ne
	if e.Blob {
		c.refs[e.SHA256]++
	}
	if old != nil && old.Blob {
		c.unref(old.SHA256)
	}
	if werr != nil {
		return fmt.Errorf("cache: write entry: %w", werr)
	}
	return nil
}

// drop forgets the entry for key.
func (c *cache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.entries[key]
	if old == nil {
		return
	}
	delete(c.entries, key)
	os.Remove(c.indexPath(key))
	if old.Blob {
		c.unref(old.SHA256)
	}
}

// unref drops one reference to a blob and removes it at zero. c.mu is
// held.
func (c *cache) unref(sum string) {
	c.refs[sum]--
	if c.refs[sum] <= 0 {
		delete(c.refs, sum)
		os.Remove(c.blobPath(sum))
	}
}

// open opens the blob with the given SHA-256.
func (c *cache) open(sum string) (*os.File, error) {
	if !validSHA(sum) {
		return nil, fs.ErrNotExist
	}
	return os.Open(c.blobPath(sum))
}

// Errors from write, which callers turn into statuses.
var (
	errTooLarge  = errors.New("body is larger than the limit")
	errTruncated = errors.New("body is shorter than its Content-Length")
)

// write stores r's bytes (at most limit of them) as a blob, hashing while
// writing, and returns their SHA-256 and length. declared is the expected
// length, or -1. Nothing is left behind on error. On success the blob is
// pinned — counted as referenced, so that no concurrent put removes it —
// and the caller must unpin it once its entry is put (or not).
func (c *cache) write(r io.Reader, limit, declared int64) (sum string, n int64, err error) {
	f, err := os.CreateTemp(c.tmp, "fetch-*") // 0600
	if err != nil {
		return "", 0, fmt.Errorf("cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return "", n, err
	case n > limit:
		return "", n, fmt.Errorf("%w of %d bytes", errTooLarge, limit)
	case declared >= 0 && n != declared:
		return "", n, fmt.Errorf("%w: got %d of %d bytes", errTruncated, n, declared)
	}
	// Synced before the rename: after a crash the index may name this
	// blob, and it must hold every byte.
	if err = f.Sync(); err != nil {
		return "", n, fmt.Errorf("cache: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", n, fmt.Errorf("cache: close: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err = os.MkdirAll(filepath.Dir(c.blobPath(sum)), 0o700); err != nil {
		return "", n, fmt.Errorf("cache: %w", err)
	}
	if err = os.Rename(f.Name(), c.blobPath(sum)); err != nil {
		return "", n, fmt.Errorf("cache: %w", err)
	}
	c.refs[sum]++
	return sum, n, nil
}

// unpin releases write's pin on a blob.
func (c *cache) unpin(sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unref(sum)
}

// writeAtomic writes b to name through a temporary file in tmp.
func writeAtomic(tmp, name string, b []byte) error {
	f, err := os.CreateTemp(tmp, "index-*")
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
