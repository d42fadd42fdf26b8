// Package spool stores a sample's bytes once while hashing them, in memory
// up to a threshold and in a private temporary file beyond it, so that
// several engines can read the same bytes without holding a many-GB file in
// memory.
package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/lazaret/lazaret/internal/ctxio"
	"github.com/lazaret/lazaret/internal/scan"
)

// DefaultMemLimit is the size up to which samples stay in memory.
const DefaultMemLimit = 1 << 20

// ErrTooLarge is returned when the input is longer than Options.MaxSize.
var ErrTooLarge = errors.New("spool: sample exceeds the size limit")

// Options controls where and how much is spooled.
type Options struct {
	// MemLimit is the largest sample kept in memory; 0 means
	// DefaultMemLimit, negative means always use a file.
	MemLimit int64
	// MaxSize is the largest sample accepted; 0 means no limit.
	MaxSize int64
	// Dir is the folder for temporary files; "" means os.TempDir().
	Dir string
	// SizeHint is the expected size when known (a Content-Length), or 0.
	// It only chooses the first in-memory buffer; the bytes read decide.
	SizeHint int64
}

// Body is a spooled sample. It implements scan.Body. Close removes any
// temporary file; it is safe to call more than once.
type Body struct {
	size   int64
	sha256 string

	mem      []byte  // nil when the bytes are in file
	pooled   *[]byte // mem's buffer, returned to memPools by Close
	file     string  // temp file holding the bytes
	borrowed bool    // file is the caller's: Close leaves it

	mu      sync.Mutex
	memPath string // file materialised for Path() of an in-memory body
	closed  bool
	dir     string
}

// Size is the number of bytes spooled.
func (b *Body) Size() int64 { return b.size }

// SHA256 is the lowercase hex SHA-256 of the bytes.
func (b *Body) SHA256() string { return b.sha256 }

// InMemory reports whether the bytes are held in memory.
func (b *Body) InMemory() bool { return b.file == "" }

// Bytes returns the bytes when they are held in memory, else nil.
func (b *Body) Bytes() []byte { return b.mem }

// New reads r to its end, hashing as it goes. The caller must Close the
// Body. When r holds more than opts.MaxSize bytes, New stops reading and
// returns ErrTooLarge with the number of bytes read so far; nothing is kept.
func New(ctx context.Context, r io.Reader, opts Options) (*Body, error) {
	memLimit := opts.MemLimit
	if memLimit == 0 {
		memLimit = DefaultMemLimit
	}
	if memLimit < 0 {
		memLimit = 0
	}
	src := ctxio.Reader(ctx, r)
	if opts.MaxSize > 0 {
		src = io.LimitReader(src, opts.MaxSize+1)
	}
	h := sha256.New()
	b := &Body{dir: opts.Dir}

	// First the in-memory part: read up to memLimit+1 bytes to learn
	// whether the sample fits.
	bp, n, err := readMem(src, memLimit+1, opts.SizeHint)
	if err != nil {
		return nil, fmt.Errorf("spool: read: %w", err)
	}
	if n <= memLimit {
		if opts.MaxSize > 0 && n > opts.MaxSize {
			putMem(bp)
			return nil, ErrTooLarge
		}
		b.mem = (*bp)[:n:n]
		b.pooled = bp
		h.Write(b.mem)
		b.size = n
		b.sha256 = hex.EncodeToString(h.Sum(nil))
		return b, nil
	}

	f, err := os.CreateTemp(opts.Dir, "lazaret-*.spool") // random name, mode 0600
	if err != nil {
		return nil, fmt.Errorf("spool: create temp file: %w", err)
	}
	b.file = f.Name()
	fail := func(err error) (*Body, error) {
		f.Close()
		os.Remove(b.file)
		return nil, err
	}
	w := io.MultiWriter(f, h)
	_, err = w.Write((*bp)[:n])
	putMem(bp)
	if err != nil {
		return fail(fmt.Errorf("spool: write: %w", err))
	}
	m, err := copyBuffered(w, src)
	if err != nil {
		return fail(fmt.Errorf("spool: read: %w", err))
	}
	total := n + m
	if opts.MaxSize > 0 && total > opts.MaxSize {
		return fail(ErrTooLarge)
	}
	if err := f.Close(); err != nil {
		os.Remove(b.file)
		return nil, fmt.Errorf("spool: close temp file: %w", err)
	}
	b.size = total
	b.sha256 = hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// File spools a file that the caller owns and keeps unchanged until the
// Body is closed (a queued upload in lazaret's own blob folder): its bytes
// are hashed in one read and then read in place, not copied to a second
// file. Close leaves the file where it is. A file within opts.MemLimit is
// read into memory, as New does. Never use it for a file others may write:
// the hash must describe the bytes the engines read.
func File(ctx context.Context, path string, opts Options) (*Body, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: stat: %w", err)
	}
	memLimit := opts.MemLimit
	if memLimit == 0 {
		memLimit = DefaultMemLimit
	}
	if !fi.Mode().IsRegular() || fi.Size() <= memLimit {
		return New(ctx, f, opts)
	}
	if opts.MaxSize > 0 && fi.Size() > opts.MaxSize {
		return nil, ErrTooLarge
	}
	h := sha256.New()
	n, err := copyBuffered(h, ctxio.Reader(ctx, f))
	if err != nil {
		return nil, fmt.Errorf("spool: read: %w", err)
	}
	if n != fi.Size() {
		return nil, fmt.Errorf("spool: %s changed while it was read (%d bytes, then %d)", path, fi.Size(), n)
	}
	return &Body{size: n, sha256: hex.EncodeToString(h.Sum(nil)), file: path, borrowed: true, dir: opts.Dir}, nil
}

// In-memory samples are read into pooled buffers of a few size classes,
// so that a busy server neither allocates nor zeroes a buffer per request
// (nor grows one by doubling). The largest class is DefaultMemLimit+1:
// one byte more than fits tells New that the sample does not.
var memClasses = [...]int{16<<10 + 1, 64<<10 + 1, 256<<10 + 1, DefaultMemLimit + 1}

var memPools [len(memClasses)]sync.Pool

// getMem returns a buffer of at least n bytes: a pooled one when n fits a
// class, else a new one.
func getMem(n int64) *[]byte {
	for i, c := range memClasses {
		if n <= int64(c) {
			if bp, ok := memPools[i].Get().(*[]byte); ok {
				return bp
			}
			b := make([]byte, c)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

// putMem returns a buffer from getMem to its pool.
func putMem(bp *[]byte) {
	for i, c := range memClasses {
		if cap(*bp) == c {
			*bp = (*bp)[:c]
			memPools[i].Put(bp)
			return
		}
	}
}

// readMem reads r into a buffer until EOF or limit bytes, moving to a
// larger buffer as it fills. hint, if positive, is the expected size.
func readMem(r io.Reader, limit, hint int64) (*[]byte, int64, error) {
	// The smallest class, or one byte more than the expected size, to
	// see the end in the same buffer.
	first := int64(memClasses[0])
	if hint > 0 {
		first = min(hint+1, limit)
	}
	bp := getMem(first)
	var n int64
	for {
		buf := *bp
		if int64(len(buf)) > limit {
			buf = buf[:limit]
		}
		for n < int64(len(buf)) {
			m, err := r.Read(buf[n:])
			n += int64(m)
			if err == io.EOF {
				return bp, n, nil
			}
			if err != nil {
				putMem(bp)
				return nil, 0, err
			}
		}
		if n >= limit {
			return bp, n, nil
		}
		next := getMem(min(2*n, limit)) // n < limit here, so larger than n
		copy(*next, buf[:n])
		putMem(bp)
		bp = next
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(w, r, *bp)
}

// Bytes returns an in-memory Body over p, for tests and callers that
// already hold the bytes.
func Bytes(p []byte) *Body {
	sum := sha256.Sum256(p)
	if p == nil {
		p = []byte{}
	}
	return &Body{size: int64(len(p)), sha256: hex.EncodeToString(sum[:]), mem: p}
}

// Open returns a new independent reader over the bytes. Readers of an
// in-memory Body must be done before Close, which recycles the buffer.
func (b *Body) Open() (io.ReadCloser, error) {
	if b.file == "" {
		if b.mem == nil {
			return nil, errors.New("spool: body is closed")
		}
		return io.NopCloser(bytes.NewReader(b.mem)), nil
	}
	f, err := os.Open(b.file)
	if err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	return f, nil
}

// Path returns a file holding the bytes, writing one for in-memory bodies.
func (b *Body) Path() (string, error) {
	if b.file != "" {
		return b.file, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", errors.New("spool: body is closed")
	}
	if b.memPath != "" {
		return b.memPath, nil
	}
	f, err := os.CreateTemp(b.dir, "lazaret-*.spool")
	if err != nil {
		return "", fmt.Errorf("spool: create temp file: %w", err)
	}
	_, werr := f.Write(b.mem)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("spool: write temp file: %w", err)
	}
	b.memPath = f.Name()
	return b.memPath, nil
}

// Close removes the temporary files.
func (b *Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.pooled != nil {
		// Engines are done with the bytes (the caller closes last), so
		// the buffer serves the next sample.
		putMem(b.pooled)
		b.pooled, b.mem = nil, nil
	}
	var errs []error
	for _, p := range []string{b.file, b.memPath} {
		if p == "" || (p == b.file && b.borrowed) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	b.memPath = ""
	return errors.Join(errs...)
}

// Sample returns the scan.Sample for these bytes under a name.
func (b *Body) Sample(name string) scan.Sample {
	return scan.Sample{Name: name, Size: b.size, SHA256: b.sha256, Body: b}
}
