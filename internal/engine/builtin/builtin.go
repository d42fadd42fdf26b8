// Package builtin is lazaret's embedded engine: pure Go, no daemon. It
// always detects the EICAR test file and, given a folder, ClamAV .hdb, .hsb
// and .ndb signatures, matched by package clamsig in one streaming pass.
//
// Signatures from the folder are reported as clamscan reports unofficial
// ones, with ".UNOFFICIAL" appended, so that the builtin engine and clamd
// loaded with the same folder name the same findings. The folder is checked
// for changes at most every ReloadInterval, lazily, when Scan or Version is
// called: no goroutine runs in the background.
package builtin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret/internal/clamsig"
	"github.com/lazaret/lazaret/internal/scan"
)

// Type is the engine type in configuration.
const Type = "builtin"

// DefaultReloadInterval is how often the signature folder is checked when
// Config.ReloadInterval is zero.
const DefaultReloadInterval = time.Minute

// EICARSignature is the name the EICAR test file is reported under, as in
// ClamAV's official database.
const EICARSignature = "Eicar-Test-Signature"

// UnofficialSuffix is appended to the names of signatures from the folder.
const UnofficialSuffix = ".UNOFFICIAL"

// eicarNDB is the built-in signature: the EICAR string at the start of the
// file, which also catches copies with a trailing newline that a hash
// would miss.
var eicarNDB = EICARSignature + ":0:0:" +
	hex.EncodeToString([]byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)) + "\n"

var _ scan.Engine = (*Engine)(nil)
var _ scan.Reloader = (*Engine)(nil)
var _ scan.Pinger = (*Engine)(nil)

// Config configures an Engine.
type Config struct {
	// Name is the engine's configured name.
	Name string
	// SignaturesDir is a folder of ClamAV .hdb, .hsb and .ndb files;
	// empty means EICAR only.
	SignaturesDir string
	// ReloadInterval is the least time between two checks of the folder
	// for changes; 0 means DefaultReloadInterval, negative never (Reload
	// still works).
	ReloadInterval time.Duration
}

// Engine is the builtin engine. It is safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger

	sigs atomic.Pointer[sigs]
	// reloadMu serialises reloads; lastCheck (unix nanoseconds) is when
	// the folder was last looked at.
	reloadMu  sync.Mutex
	lastCheck atomic.Int64
}

// sigs is one loaded generation of signatures.
type sigs struct {
	m       *clamsig.Matcher
	version string
	// stamp is the folder's names, sizes and modification times when it
	// was read: a change means a reload.
	stamp string
}

// New loads the signatures and returns the engine. A folder that cannot be
// read, or from which not one signature loads while some are malformed, is
// an error; single malformed lines are logged (with file and line) and
// skipped. log may be nil.
func New(cfg Config, log *slog.Logger) (*Engine, error) {
	if cfg.Name == "" {
		cfg.Name = Type
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: log.With("engine", cfg.Name)}
	s, err := e.load()
	if err != nil {
		return nil, err
	}
	e.sigs.Store(s)
	e.lastCheck.Store(time.Now().UnixNano())
	return e, nil
}

// Name is the configured name.
func (e *Engine) Name() string { return e.cfg.Name }

// Type is "builtin".
func (e *Engine) Type() string { return Type }

// Version is "builtin/" and the first 12 hex digits of a SHA-256 over the
// loaded signature files' names and contents, so that it changes with them.
func (e *Engine) Version(ctx context.Context) (string, error) {
	e.maybeReload()
	return e.sigs.Load().version, nil
}

// Ping always succeeds: the signatures are in memory.
func (e *Engine) Ping(ctx context.Context) error { return nil }

// Reload reads the signature folder now. If it cannot be read, or not one
// signature loads from it while some are malformed, the signatures in use
// are kept and the error returned.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.lastCheck.Store(time.Now().UnixNano())
	return e.reloadLocked()
}

func (e *Engine) reloadLocked() error {
	s, err := e.load()
	if err != nil {
		return err
	}
	if old := e.sigs.Swap(s); old.version != s.version {
		e.log.Info("signatures reloaded", "version", s.version, "old_version", old.version)
	}
	return nil
}

// maybeReload checks the folder when ReloadInterval has passed since the
// last check, and reloads it when it changed. Only one caller checks at a
// time; the others go on with the signatures they have.
func (e *Engine) maybeReload() {
	if e.cfg.SignaturesDir == "" || e.cfg.ReloadInterval < 0 {
		return
	}
	last := e.lastCheck.Load()
	now := time.Now().UnixNano()
	if now-last < int64(e.cfg.ReloadInterval) || !e.reloadMu.TryLock() {
		return
	}
	defer e.reloadMu.Unlock()
	if !e.lastCheck.CompareAndSwap(last, now) {
		return // someone checked while we were getting the lock
	}
	stamp, _, err := e.stamp()
	if err != nil {
		e.log.Error("signature folder check failed", "dir", e.cfg.SignaturesDir, "error", err)
		return
	}
	if stamp == e.sigs.Load().stamp {
		return
	}
	if err := e.reloadLocked(); err != nil {
		e.log.Error("signature reload failed, keeping the old signatures", "dir", e.cfg.SignaturesDir, "error", err)
	}
}

// stamp lists the folder's signature files and sums up their names, sizes
// and modification times.
func (e *Engine) stamp() (string, []string, error) {
	ents, err := os.ReadDir(e.cfg.SignaturesDir)
	if err != nil {
		return "", nil, fmt.Errorf("builtin: read signatures: %w", err)
	}
	var sb strings.Builder
	var names []string
	for _, ent := range ents {
		if ent.IsDir() || clamsig.Parser(ent.Name()) == nil {
			continue
		}
		info, err := ent.Info()
		if err != nil {
			return "", nil, fmt.Errorf("builtin: read signatures: %w", err)
		}
		names = append(names, ent.Name())
		fmt.Fprintf(&sb, "%s\x00%d\x00%d\n", ent.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return sb.String(), names, nil
}

// load reads the built-in signature and the folder's files and compiles
// them. The stamp is taken before the files are read, so that a change
// made while they are read shows at the next check.
func (e *Engine) load() (*sigs, error) {
	db, errs := clamsig.ParseNDB(strings.NewReader(eicarNDB), "builtin")
	if len(errs) > 0 {
		return nil, fmt.Errorf("builtin: built-in signature: %w", errors.Join(errs...))
	}
	h := sha256.New()
	io.WriteString(h, eicarNDB)
	s := &sigs{}
	if dir := e.cfg.SignaturesDir; dir != "" {
		stamp, names, err := e.stamp()
		if err != nil {
			return nil, err
		}
		s.stamp = stamp
		folder := &clamsig.DB{}
		var rejected int
		for _, name := range names {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("builtin: read signatures: %w", err)
			}
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			io.WriteString(h, name+"\x00")
			h.Write(n[:])
			h.Write(b)
			one, errs := clamsig.Parser(name)(bytes.NewReader(b), name)
			for _, err := range errs {
				e.log.Warn("signature rejected", "dir", dir, "error", err)
			}
			rejected += len(errs)
			folder.Add(one)
		}
		if folder.Len() == 0 && rejected > 0 {
			return nil, fmt.Errorf("builtin: no valid signature in %s (%d rejected)", dir, rejected)
		}
		for i := range folder.Hashes {
			folder.Hashes[i].Name += UnofficialSuffix
		}
		for i := range folder.Bodies {
			folder.Bodies[i].Name += UnofficialSuffix
		}
		db.Add(folder)
		e.log.Info("signatures loaded", "dir", dir, "signatures", folder.Len(), "rejected", rejected, "files", len(names))
	}
	m, err := clamsig.Compile(db)
	if err != nil {
		return nil, fmt.Errorf("builtin: %w", err)
	}
	s.m = m
	s.version = "builtin/" + hex.EncodeToString(h.Sum(nil))[:12]
	return s, nil
}

// Scan matches the sample against the signatures in one streaming pass.
// Cancellation is checked between chunks and reported with reason
// timeout; a read error or a sample shorter or longer than its Size is an
// error with reason io_error, never clean.
func (e *Engine) Scan(ctx context.Context, smp scan.Sample) (scan.Result, error) {
	e.maybeReload()
	s := e.sigs.Load()
	if smp.Body == nil {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "builtin: sample %q has no body", smp.Name)
	}
	r, err := smp.Body.Open()
	if err != nil {
		return scan.Result{}, scan.Errorf(scan.ReasonIO, "builtin: open sample: %w", err)
	}
	defer r.Close()
	matches, err := s.m.Scan(ctx, r, smp.Size)
	res := result(matches)
	if err != nil && len(matches) == 0 {
		res = scan.Result{} // no verdict: only the error speaks
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return res, scan.Errorf(scan.ReasonTimeout, "builtin: scan: %w", err)
	case errors.Is(err, clamsig.ErrSizeMismatch):
		return res, scan.Errorf(scan.ReasonIO, "builtin: scan: %w", err)
	}
	return res, scan.Errorf(scan.ReasonIO, "builtin: read sample: %w", err)
}

// result turns matches into a Result. The built-in EICAR finding is left
// out when a folder signature of the same name found it too, as clamd
// would report only the latter.
func result(matches []clamsig.Match) scan.Result {
	if len(matches) == 0 {
		return scan.Result{Verdict: scan.Clean}
	}
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, m.Name)
	}
	var fs []scan.Finding
	for _, n := range names {
		if slices.Contains(names, n+UnofficialSuffix) || slices.ContainsFunc(fs, func(f scan.Finding) bool { return f.Signature == n }) {
			continue
		}
		fs = append(fs, scan.Finding{Signature: n})
	}
	return scan.Result{Verdict: scan.Infected, Findings: fs}
}

// SignaturesUpdated is when the signature folder last changed (zero
// without a folder: the built-in EICAR signature has no age).
func (e *Engine) SignaturesUpdated(ctx context.Context) (time.Time, error) {
	if e.cfg.SignaturesDir == "" {
		return time.Time{}, nil
	}
	return clamsig.ModTime(e.cfg.SignaturesDir)
}
