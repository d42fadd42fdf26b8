package clamd

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/clamsig"
	"github.com/lazaret/lazaret/internal/scan"
)

// versionTTL is how long clamd's VERSION reply is reused. The pipeline
// asks for the version on every scan (it is part of the verdict cache
// key); a few seconds keeps that cheap and still notices a database update
// by freshclam soon.
const versionTTL = 5 * time.Second

// Version returns clamd's version, "ClamAV 1.4.6/27480" with the official
// databases (the date clamd appends is dropped: the database number
// already identifies it). With SignaturesDir set it appends
// "+sigs:<12 hex>", a digest of that folder's signature files, because
// clamd answers a bare "ClamAV 1.4.6" however its custom signatures
// change.
//
// The folder is checked at most every ReloadInterval, by names, sizes and
// modification times first and by content only when those changed. When
// the content changed, RELOAD goes to every address and the new digest is
// reported ReloadSettle later, once clamd has had time to load it: until
// then verdicts are still made with the old signatures, and must be
// cached under the old version. The first check assumes clamd runs what
// the folder holds; call Reload to be sure.
func (e *Engine) Version(ctx context.Context) (string, error) {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	now := e.now()
	if e.version == "" || now.Sub(e.versionAt) >= versionTTL {
		reply, err := e.first(ctx, "VERSION")
		if err != nil {
			return "", err
		}
		e.version, e.versionAt = trimVersion(reply), now
		e.dbTime = versionDate(reply)
	}
	if e.sigs == nil {
		return e.version, nil
	}
	d, err := e.sigsDigest(ctx, now)
	if err != nil {
		return "", err
	}
	return e.version + "+sigs:" + d, nil
}

// versionDate parses the database date of "ClamAV 1.4.6/27480/Mon Nov 23
// 09:00:00 2026"; zero when there is none (custom databases only).
func versionDate(v string) time.Time {
	parts := strings.SplitN(v, "/", 3)
	if len(parts) < 3 {
		return time.Time{}
	}
	t, err := time.Parse("Mon Jan _2 15:04:05 2006", strings.TrimSpace(parts[2]))
	if err != nil {
		return time.Time{}
	}
	return t
}

// SignaturesUpdated is when clamd's signatures last changed: the
// official database's date from VERSION, or the signature folder's
// newest file when one is configured, whichever is later.
func (e *Engine) SignaturesUpdated(ctx context.Context) (time.Time, error) {
	if _, err := e.Version(ctx); err != nil {
		return time.Time{}, err
	}
	e.vmu.Lock()
	t := e.dbTime
	e.vmu.Unlock()
	if e.cfg.SignaturesDir != "" {
		ft, err := clamsig.ModTime(e.cfg.SignaturesDir)
		if err != nil {
			return time.Time{}, err
		}
		if ft.After(t) {
			t = ft
		}
	}
	return t, nil
}

// trimVersion drops the database date from "ClamAV 1.4.6/27480/Mon Nov 23
// 09:00:00 2026".
func trimVersion(v string) string {
	if i := strings.Index(v, "/"); i >= 0 {
		if j := strings.Index(v[i+1:], "/"); j >= 0 {
			return v[:i+1+j]
		}
	}
	return v
}

// Reload sends RELOAD to every address, so that clamd loads its signature
// folder again, and makes the next Version ask clamd afresh. An address
// where nothing listens is passed over (a clamd that starts loads the
// folder anyway); any other failure is returned, after the other
// addresses were told.
func (e *Engine) Reload(ctx context.Context) error {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	err := e.reloadAll(ctx)
	e.versionAt = time.Time{}
	if e.sigs == nil || err != nil {
		return err
	}
	s := e.sigs
	fp, ferr := fingerprint(s.dir)
	d, derr := digest(s.dir)
	if err := errors.Join(ferr, derr); err != nil {
		return fmt.Errorf("clamd: reload: %w", err)
	}
	now := e.now()
	s.fp, s.checkedAt = fp, now
	switch {
	case s.loaded == "":
		s.loaded = d
	case d != s.loaded:
		s.pending, s.pendingAt = d, now.Add(e.cfg.ReloadSettle)
	default:
		s.pending = ""
	}
	return nil
}

// reloadAll sends RELOAD to every address and closes pooled sessions, so
// that no scan runs on a connection from before the reload.
func (e *Engine) reloadAll(ctx context.Context) error {
	var errs []error
	for _, b := range e.backends {
		b.drain()
		reply, err := e.command(ctx, b, "RELOAD")
		switch {
		case err != nil && isRefused(err):
			e.log.Warn("clamd reload skipped, address down", "address", b.addr.raw, "error", err)
		case err != nil:
			errs = append(errs, err)
		case reply != "RELOADING":
			errs = append(errs, scan.Errorf(scan.ReasonEngineError, "clamd: reload: %s: %w: %q", b.addr, ErrUnexpectedReply, reply))
		default:
			e.log.Info("clamd reload", "address", b.addr.raw)
		}
	}
	return errors.Join(errs...)
}

// sigState is what the engine knows of SignaturesDir. Guarded by
// Engine.vmu.
type sigState struct {
	dir       string
	checkedAt time.Time
	fp        [sha256.Size]byte // names, sizes and mtimes at the last check
	loaded    string            // digest clamd is taken to run
	pending   string            // digest sent RELOAD for, reported from pendingAt
	pendingAt time.Time
}

// sigsDigest returns the digest to report, checking the folder and
// reloading clamd when it is due.
func (e *Engine) sigsDigest(ctx context.Context, now time.Time) (string, error) {
	s := e.sigs
	if s.pending != "" && !now.Before(s.pendingAt) {
		s.loaded, s.pending = s.pending, ""
		e.log.Info("clamd signatures changed", "digest", s.loaded)
	}
	if s.loaded != "" && now.Sub(s.checkedAt) < e.cfg.ReloadInterval {
		return s.loaded, nil
	}
	fp, err := fingerprint(s.dir)
	if err != nil {
		return "", fmt.Errorf("clamd: version: %w", err)
	}
	s.checkedAt = now
	if s.loaded != "" && fp == s.fp {
		return s.loaded, nil
	}
	d, err := digest(s.dir)
	if err != nil {
		return "", fmt.Errorf("clamd: version: %w", err)
	}
	s.fp = fp
	switch {
	case s.loaded == "":
		s.loaded = d
	case d == s.loaded:
		// Touched, or changed back before the reload settled.
		s.pending = ""
	case d == s.pending:
		// Already reloading for this content.
	default:
		if err := e.reloadAll(ctx); err != nil {
			// clamd keeps its old signatures (a malformed file fails the
			// reload too), and so does the version. Forget the
			// fingerprint so that the next check tries again.
			s.fp = [sha256.Size]byte{}
			e.log.Warn("clamd reload failed, keeping the old version", "error", err)
			return s.loaded, nil
		}
		s.pending, s.pendingAt = d, now.Add(e.cfg.ReloadSettle)
	}
	e.versionAt = time.Time{} // ask clamd too: a reload can change it
	return s.loaded, nil
}

// sigExts are the database file types clamd loads from its database
// folder (libclamav's CLI_DBEXT). Other files (freshclam.dat, logs) do
// not change what clamd detects and stay out of the digest.
var sigExts = map[string]bool{
	".db": true, ".hdb": true, ".hdu": true, ".hsb": true, ".hsu": true,
	".mdb": true, ".mdu": true, ".msb": true, ".msu": true, ".ndb": true,
	".ndu": true, ".ldb": true, ".ldu": true, ".sdb": true, ".zmd": true,
	".rmd": true, ".idb": true, ".fp": true, ".sfp": true, ".gdb": true,
	".pdb": true, ".wdb": true, ".cbc": true, ".ftm": true, ".cfg": true,
	".cvd": true, ".cld": true, ".cud": true, ".cdb": true, ".cat": true,
	".crb": true, ".ioc": true, ".yar": true, ".yara": true, ".pwdb": true,
	".ign": true, ".ign2": true, ".imp": true, ".info": true,
}

// sigFiles lists the signature files of dir, sorted by name.
func sigFiles(dir string) ([]os.FileInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("signatures: %w", err)
	}
	var out []os.FileInfo
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !sigExts[strings.ToLower(filepath.Ext(name))] {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name)) // follows symlinks, as clamd does
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed while we looked
			}
			return nil, fmt.Errorf("signatures: %w", err)
		}
		if fi.Mode().IsRegular() {
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// fingerprint hashes the names, sizes and modification times of dir's
// signature files: cheap, and different whenever a file is replaced.
func fingerprint(dir string) ([sha256.Size]byte, error) {
	files, err := sigFiles(dir)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	var n [8]byte
	for _, fi := range files {
		io.WriteString(h, fi.Name())
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(fi.Size()))
		h.Write(n[:])
		binary.BigEndian.PutUint64(n[:], uint64(fi.ModTime().UnixNano()))
		h.Write(n[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

// digest hashes the names and contents of dir's signature files and
// returns the first 12 hex digits.
func digest(dir string) (string, error) {
	files, err := sigFiles(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var n [8]byte
	for _, fi := range files {
		f, err := os.Open(filepath.Join(dir, fi.Name()))
		if err != nil {
			return "", fmt.Errorf("signatures: %w", err)
		}
		// Name, then length-prefixed content, so that no two folders
		// hash alike by moving bytes between files.
		io.WriteString(h, fi.Name())
		h.Write([]byte{0})
		var content = sha256.New()
		size, err := io.Copy(content, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("signatures: %w", err)
		}
		binary.BigEndian.PutUint64(n[:], uint64(size))
		h.Write(n[:])
		h.Write(content.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
