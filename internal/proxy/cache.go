package proxy

import (
	"container/list"
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
	"slices"
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
//
// The bodies' total size is bounded (Config.CacheMaxSize): past it, the
// least recently used bodies are removed, never one that is being written,
// scanned or served. The entries that named an evicted body keep their URL
// and verdict but no longer claim the bytes, so the next request fetches
// them again; an entry never names a body that is not there.

// maxIndexFile bounds what is read of one index file.
const maxIndexFile = 1 << 20

// smallBlob is the largest body served from a file kept open between
// requests (read with pread, no open or close per request). Larger ones
// are opened per request and sent with sendfile.
const smallBlob = 64 << 10

// maxOpenBlobs bounds the files kept open: a quarter of the process's
// limit on open files, at least 64 and at most 4096.
func maxOpenBlobs() int {
	if n := openFilesLimit(); n > 0 {
		return min(max(n/4, 64), 4096)
	}
	return 256
}

// entry is what the proxy knows about one upstream URL. Entries in the
// cache are never modified: a change stores a new one.
type entry struct {
	URL string `json:"url"`
	// Path is the local request path the URL is served under.
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Header holds the upstream headers that are passed on.
	Header map[string]string `json:"header"`
	// Blob says the bytes are in the cache. Infected bytes are not kept,
	// and evicted ones are fetched again.
	Blob bool `json:"blob"`
	// Rewrite names the link rewriting the stored bytes went through
	// (see Proxy.rewriteID); "" when they are the upstream's own.
	Rewrite string `json:"rewrite,omitempty"`
	// Verdict is the last verdict for the bytes ("" when not scanned).
	// It is informational: before cached bytes are served the verdict is
	// confirmed under the current engine versions.
	Verdict   scan.Verdict `json:"verdict,omitempty"`
	Signature string       `json:"signature,omitempty"`
	Job       string       `json:"job,omitempty"`
	// Validated is when the upstream last confirmed the bytes (a fetch or
	// a 304).
	Validated time.Time `json:"validated"`

	// d is worked out from the fields above when the entry is stored.
	d derived
}

func (e *entry) contentType() string { return e.Header["Content-Type"] }

// cache is the folder and the in-memory index over it.
type cache struct {
	blobDir, index, tmp string
	log                 *slog.Logger
	// max bounds the bodies' total size; 0 or less means no bound.
	max int64
	// derive fills an entry's derived fields; false drops the entry.
	derive func(*entry) bool
	// forget is told the hash of a body that left the cache (may be nil).
	forget func(sum string)
	m      *proxyMetrics
	// maxOpen bounds the kept-open files.
	maxOpen int

	// indexMu orders the writes of index files, which happen outside mu
	// so that serving, which takes mu on every request, never waits on the
	// disk. Each write takes the entry in memory at that moment (see
	// flush), so whatever order racing writers run in, the last one
	// leaves the file matching memory. Taken before mu, never while mu is
	// held.
	indexMu sync.Mutex

	mu      sync.Mutex
	entries map[string]*entry // by URL
	blobs   map[string]*blob  // bodies in the folder, by SHA-256
	lru     list.List         // of *blob, most recently used first
	open    list.List         // of *blob with a kept-open file, most recently used first
	size    int64             // bytes of the bodies in blobs
	// closed: files are no longer kept open (the proxy closed).
	closed bool
	// pinned is the bytes of the bodies being written and scanned:
	// counted in size, but not held against the bound until they are
	// settled (an infected one goes again at once).
	pinned int64
}

// blob is one body in the folder.
type blob struct {
	sum  string
	size int64
	// urls are the entries with Blob set that name this body.
	urls []string
	// pins are writes whose entry is not stored yet.
	pins int
	// users are readers: requests serving it, scans reading it.
	users int
	// gone: dropped from the cache while in use; its file is removed
	// when the last user leaves.
	gone bool
	used *list.Element // in cache.lru
	f    *os.File      // kept open, for small bodies
	fel  *list.Element // in cache.open
}

type cacheOptions struct {
	max    int64
	derive func(*entry) bool
	// forget, if set, is told the content hash of a body that left the
	// cache, so that what is remembered about it goes too.
	forget func(sum string)
	log    *slog.Logger
	m      *proxyMetrics
}

func openCache(dir string, o cacheOptions) (*cache, error) {
	c := &cache{blobDir: filepath.Join(dir, "blobs"), index: filepath.Join(dir, "index"), tmp: filepath.Join(dir, "tmp"),
		log: o.log, max: o.max, derive: o.derive, forget: o.forget, m: o.m, maxOpen: maxOpenBlobs(), entries: map[string]*entry{}, blobs: map[string]*blob{}}
	for _, d := range []string{dir, c.blobDir, c.index, c.tmp} {
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
	var loaded []*entry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		name := filepath.Join(c.index, de.Name())
		e, err := readEntry(name)
		if err == nil && name != c.indexPath(e.URL) {
			err = errors.New("file name does not match the URL")
		}
		if err == nil && !c.derive(e) {
			err = errors.New("its path does not lead to its URL under this configuration")
		}
		if err != nil {
			// A broken or stale entry only costs a fetch.
			c.log.Warn("proxy cache entry dropped", "file", de.Name(), "error", err.Error())
			os.Remove(name)
			continue
		}
		loaded = append(loaded, e)
	}
	// One walk over the bodies finds their sizes and removes what no
	// entry names: bodies replaced upstream, or left by a crash between
	// the rename and the index write.
	named := map[string]bool{}
	for _, e := range loaded {
		if e.Blob {
			named[e.SHA256] = true
		}
	}
	sizes := map[string]int64{}
	filepath.WalkDir(c.blobDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // an unreadable folder: its bodies count as missing
		}
		if name := d.Name(); named[name] && p == c.blobPath(name) {
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				sizes[name] = fi.Size()
				return nil
			}
		}
		os.Remove(p)
		return nil
	})
	// The most recently validated bodies count as the most recently used.
	slices.SortFunc(loaded, func(a, b *entry) int { return a.Validated.Compare(b.Validated) })
	for _, e := range loaded {
		if e.Blob {
			b := c.blobs[e.SHA256]
			if size, ok := sizes[e.SHA256]; b == nil && ok && size == e.Size {
				b = c.addBlob(e.SHA256, e.Size)
			}
			if b != nil && b.size == e.Size {
				b.urls = append(b.urls, e.URL)
				c.lru.MoveToFront(b.used)
			} else {
				e.Blob = false
			}
		}
		c.entries[e.URL] = e
	}
	// Bodies of another size than their entries say are not theirs.
	for sum := range sizes {
		if c.blobs[sum] == nil {
			os.Remove(c.blobPath(sum))
		}
	}
	// No one else has the cache yet; mu is for evictLocked's rule.
	c.mu.Lock()
	evicted := c.evictLocked(nil)
	c.mu.Unlock()
	c.flushLogged(evicted...)
	c.gauges()
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

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (c *cache) blobPath(sum string) string {
	return c.blobDir + string(filepath.Separator) + sum[:2] + string(filepath.Separator) + sum
}

func (c *cache) indexPath(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.index, hex.EncodeToString(h[:])+".json")
}

// get returns the entry for key. It must not be modified.
func (c *cache) get(key string) (*entry, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	return e, ok
}

// put records e, in memory and then on disk so that a restart keeps it,
// and returns the entry as stored; e must not be used or modified after.
// An entry naming a body that is no longer cached is stored without it. A
// body no entry refers to any more is removed.
func (c *cache) put(e *entry) (*entry, error) {
	c.mu.Lock()
	var b *blob
	if e.Blob {
		if b = c.blobs[e.SHA256]; b == nil {
			e.Blob = false
		}
	}
	if !c.derive(e) {
		c.mu.Unlock()
		return e, errors.New("cache: entry's path does not lead to its URL")
	}
	// The in-memory index is updated even when the file cannot be: serving
	// stays right, only a restart would forget.
	old := c.entries[e.URL]
	c.entries[e.URL] = e
	same := old != nil && old.Blob && e.Blob && old.SHA256 == e.SHA256
	if !same {
		if b != nil {
			b.urls = append(b.urls, e.URL)
		}
		if old != nil && old.Blob {
			c.unlinkLocked(old.SHA256, old.URL)
		}
	}
	c.mu.Unlock()
	if err := c.flush(e.URL); err != nil {
		return e, fmt.Errorf("cache: write entry: %w", err)
	}
	return e, nil
}

// flush brings the index files of keys in line with the in-memory index:
// each is written as its entry is now, or removed when there is none.
// Callers change the index under mu and flush after letting go of it.
// Reading the entries under indexMu, not passing them in, is what keeps a
// slow writer from overwriting a newer entry with the one it changed: an
// eviction detaching a URL's body while a fetch stores new bytes for it
// leaves the fetch's entry on disk, whichever flush runs last.
func (c *cache) flush(keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	c.indexMu.Lock()
	defer c.indexMu.Unlock()
	now := make([]*entry, len(keys))
	c.mu.Lock()
	for i, k := range keys {
		now[i] = c.entries[k]
	}
	c.mu.Unlock()
	var errs []error
	for i, e := range now {
		if err := c.writeIndex(keys[i], e); err != nil {
			errs = append(errs, fmt.Errorf("index of %s: %w", keys[i], err))
		}
	}
	return errors.Join(errs...)
}

// writeIndex writes the index file of key: e, or none when e is nil.
// Entries are never modified, so e is read without mu.
func (c *cache) writeIndex(key string, e *entry) error {
	if e == nil {
		if err := os.Remove(c.indexPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode entry: %w", err)
	}
	return writeAtomic(c.tmp, c.indexPath(key), b)
}

// flushLogged is flush for callers with no one to return an error to.
func (c *cache) flushLogged(keys ...string) {
	if err := c.flush(keys...); err != nil {
		c.log.Warn("proxy cache write failed", "error", err.Error())
	}
}

// drop forgets the entry for key.
func (c *cache) drop(key string) {
	c.mu.Lock()
	old := c.entries[key]
	if old == nil {
		c.mu.Unlock()
		return
	}
	delete(c.entries, key)
	if old.Blob {
		c.unlinkLocked(old.SHA256, old.URL)
	}
	c.mu.Unlock()
	c.flushLogged(key)
}

// discard removes the body sum (corrupt, or gone from the folder) and
// stores every entry that named it without it.
func (c *cache) discard(sum string) {
	var changed []string
	c.mu.Lock()
	if b := c.blobs[sum]; b != nil {
		changed = c.detachLocked(b, nil)
		c.removeLocked(b)
	}
	c.mu.Unlock()
	c.flushLogged(changed...)
}

// detachLocked stores the entries naming b without it, in memory, and
// returns changed with their URLs added: the caller flushes them once it
// let go of c.mu.
func (c *cache) detachLocked(b *blob, changed []string) []string {
	for _, u := range b.urls {
		old := c.entries[u]
		if old == nil || !old.Blob || old.SHA256 != b.sum {
			continue
		}
		e := *old
		e.Blob = false
		c.entries[u] = &e
		changed = append(changed, u)
	}
	b.urls = nil
	return changed
}

// unlinkLocked drops url's reference to the body sum and removes the body
// when nothing refers to it. c.mu is held.
func (c *cache) unlinkLocked(sum, url string) {
	b := c.blobs[sum]
	if b == nil {
		return
	}
	if i := slices.Index(b.urls, url); i >= 0 {
		b.urls = slices.Delete(b.urls, i, i+1)
	}
	if len(b.urls) == 0 && b.pins == 0 {
		c.removeLocked(b)
	}
}

// addBlob records a new body. c.mu is held (or the cache is not shared
// yet).
func (c *cache) addBlob(sum string, size int64) *blob {
	b := &blob{sum: sum, size: size}
	b.used = c.lru.PushFront(b)
	c.blobs[sum] = b
	c.size += size
	return b
}

// removeLocked takes b out of the cache; its file goes now, or when its
// last user leaves. c.mu is held.
func (c *cache) removeLocked(b *blob) {
	if c.blobs[b.sum] == b {
		delete(c.blobs, b.sum)
		if c.forget != nil {
			c.forget(b.sum)
		}
		c.lru.Remove(b.used)
		c.size -= b.size
		if b.pins > 0 {
			c.pinned -= b.size
		}
	}
	b.gone = true
	if b.users == 0 {
		c.closeLocked(b)
		c.removeFileLocked(b)
	}
	c.gauges()
}

// removeFileLocked removes b's file unless a new body with the same
// content took its place. c.mu is held.
func (c *cache) removeFileLocked(b *blob) {
	if c.blobs[b.sum] == nil {
		os.Remove(c.blobPath(b.sum))
	}
}

func (c *cache) closeLocked(b *blob) {
	if b.f != nil {
		b.f.Close()
		b.f = nil
		c.open.Remove(b.fel)
		b.fel = nil
	}
}

// evictLocked removes least recently used bodies until the total size is
// within the bound. Bodies in use or being written stay; the bound is then
// exceeded until they are released. It returns changed with the URLs of
// the entries that lost their body added, for the caller to flush once it
// let go of c.mu. c.mu is held.
func (c *cache) evictLocked(changed []string) []string {
	for c.over() {
		var victim *blob
		for el := c.lru.Back(); el != nil; el = el.Prev() {
			if b := el.Value.(*blob); b.users == 0 && b.pins == 0 {
				victim = b
				break
			}
		}
		if victim == nil {
			return changed
		}
		changed = c.detachLocked(victim, changed)
		// The body's file goes under mu: a fetch of the same content
		// renames a new file into its place under mu, and must not lose
		// it to a removal that ran late.
		c.removeLocked(victim)
		c.m.evictions.Inc()
		c.m.evictedBytes.Add(float64(victim.size))
		c.log.Debug("proxy cache evicted", "sha256", victim.sum, "size", victim.size)
	}
	return changed
}

// over reports whether the settled bodies exceed the bound. c.mu is held.
func (c *cache) over() bool { return c.max > 0 && c.size-c.pinned > c.max }

func (c *cache) gauges() {
	c.m.bytes.Set(float64(c.size))
	c.m.files.Set(float64(len(c.blobs)))
}

// acquire marks the body sum as in use and returns it; the caller must
// release it. It fails when the body is not cached (any more).
func (c *cache) acquire(sum string) (*blob, error) {
	c.mu.Lock()
	b := c.blobs[sum]
	if b == nil {
		c.mu.Unlock()
		return nil, fs.ErrNotExist
	}
	if b.size <= smallBlob && b.f == nil && !c.closed {
		f, err := os.Open(c.blobPath(sum))
		if err != nil {
			// Gone from the folder behind our back: forget it, so that
			// it is fetched again.
			changed := c.detachLocked(b, nil)
			c.removeLocked(b)
			c.mu.Unlock()
			c.log.Warn("proxy cached body missing", "sha256", sum, "error", err.Error())
			c.flushLogged(changed...)
			return nil, fmt.Errorf("cache: %w", err)
		}
		b.f = f
		b.fel = c.open.PushFront(b)
		c.trimOpenLocked()
	} else if b.fel != nil {
		c.open.MoveToFront(b.fel)
	}
	b.users++
	c.lru.MoveToFront(b.used)
	c.mu.Unlock()
	return b, nil
}

// trimOpenLocked closes the least recently used kept-open files beyond
// c.maxOpen that no one reads. c.mu is held.
func (c *cache) trimOpenLocked() {
	for el := c.open.Back(); el != nil && c.open.Len() > c.maxOpen; {
		prev := el.Prev()
		if b := el.Value.(*blob); b.users == 0 {
			c.closeLocked(b)
		}
		el = prev
	}
}

// release ends one use of b.
func (c *cache) release(b *blob) {
	c.mu.Lock()
	b.users--
	var evicted []string
	switch {
	case b.users > 0:
	case b.gone:
		c.closeLocked(b)
		c.removeFileLocked(b)
	default:
		if c.closed {
			c.closeLocked(b)
		}
		evicted = c.evictLocked(nil)
	}
	c.mu.Unlock()
	c.flushLogged(evicted...)
}

// close closes the kept-open files; those in use close when released.
// The cache still works, opening files per read.
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for el := c.open.Front(); el != nil; {
		next := el.Next()
		if b := el.Value.(*blob); b.users == 0 {
			c.closeLocked(b)
		}
		el = next
	}
}

// reader returns a reader over b's bytes, which b's user must close.
// Small bodies share one open file (read at offsets), larger ones are
// opened: an *os.File lets net/http send it with sendfile. A body in use
// is never removed, but it can be removed behind the cache's back.
func (c *cache) reader(b *blob) (io.ReadSeekCloser, error) {
	if f := b.f; f != nil {
		return nopCloser{io.NewSectionReader(f, 0, b.size)}, nil
	}
	f, err := os.Open(c.blobPath(b.sum))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

type nopCloser struct{ *io.SectionReader }

func (nopCloser) Close() error { return nil }

// Errors from write, which callers turn into statuses.
var (
	errTooLarge  = errors.New("body is larger than the limit")
	errTruncated = errors.New("body is shorter than its Content-Length")
)

// countWriter counts what goes to w, and refuses to write more than max
// bytes: a rewritten page can be longer than the page read.
type countWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.max {
		return 0, fmt.Errorf("%w of %d bytes (after rewriting)", errTooLarge, c.max)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// write stores r's bytes (at most limit of them) as a body, hashing while
// writing, and returns the body (b.sum is the SHA-256) and its length. declared is the
// expected length of r, or -1. transform, if set, wraps the file's writer
// (to rewrite links); the hash and length are the transformed bytes'.
// Nothing is left behind on error. On success the body is pinned — kept
// from eviction and removal — and the caller must unpin it once its entry
// is put (or not).
func (c *cache) write(r io.Reader, limit, declared int64, transform func(io.Writer) io.WriteCloser) (_ *blob, n int64, err error) {
	f, err := os.CreateTemp(c.tmp, "fetch-*") // 0600
	if err != nil {
		return nil, 0, fmt.Errorf("cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	out := &countWriter{w: io.MultiWriter(f, h), max: limit}
	var dst io.Writer = out
	var tw io.WriteCloser
	if transform != nil {
		tw = transform(out)
		dst = tw
	}
	in, err := io.Copy(dst, io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return nil, in, err
	case in > limit:
		return nil, in, fmt.Errorf("%w of %d bytes", errTooLarge, limit)
	case declared >= 0 && in != declared:
		return nil, in, fmt.Errorf("%w: got %d of %d bytes", errTruncated, in, declared)
	}
	if tw != nil {
		if err = tw.Close(); err != nil {
			return nil, in, fmt.Errorf("cache: %w", err)
		}
	}
	// Synced before the rename: after a crash the index may name this
	// blob, and it must hold every byte.
	if err = f.Sync(); err != nil {
		return nil, in, fmt.Errorf("cache: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return nil, in, fmt.Errorf("cache: close: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err = os.MkdirAll(filepath.Dir(c.blobPath(sum)), 0o700); err != nil {
		return nil, in, fmt.Errorf("cache: %w", err)
	}
	// Renaming over a body with the same content is harmless: readers
	// that have the old file open read the same bytes.
	if err = os.Rename(f.Name(), c.blobPath(sum)); err != nil {
		return nil, in, fmt.Errorf("cache: %w", err)
	}
	b := c.blobs[sum]
	if b == nil {
		b = c.addBlob(sum, out.n)
	}
	if b.pins == 0 {
		c.pinned += b.size
	}
	b.pins++
	c.lru.MoveToFront(b.used)
	// Nothing is evicted for the new body before it is scanned: if it is
	// infected, it goes and other bodies need not. unpin evicts.
	c.gauges()
	return b, out.n, nil
}

// unpin releases write's pin on b.
func (c *cache) unpin(b *blob) {
	c.mu.Lock()
	b.pins--
	var evicted []string
	switch {
	case b.gone || b.pins > 0:
	case len(b.urls) == 0:
		c.pinned -= b.size
		c.removeLocked(b)
	default:
		c.pinned -= b.size
		evicted = c.evictLocked(nil)
	}
	c.mu.Unlock()
	c.flushLogged(evicted...)
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
