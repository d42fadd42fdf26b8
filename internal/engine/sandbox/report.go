package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"syscall"

	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
)

// sniffSize is how much of a report sniffing its media type reads, as
// http.DetectContentType does.
const sniffSize = 512

// keepReport reads the report the analyzer left at p, checks it against
// the limits, and keeps it in Config.Reports under its SHA-256. It returns
// the report's reference (nil when there is none, or nowhere to keep it)
// and, when wantDoc is set (an infected sample's findings may come from
// it), a signature field is configured and the report is a JSON object,
// that object.
func (e *Engine) keepReport(ctx context.Context, p string, wantDoc bool) (*scan.Report, map[string]any, error) {
	rc := e.cfg.Report
	// No following links, no blocking on a FIFO: with isolation none the
	// analyzer could have replaced its report file with either.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: report: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: report: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: report: not a regular file")
	case fi.Size() > rc.MaxSize:
		return nil, nil, scan.Errorf(scan.ReasonEngineError,
			"sandbox: the report is %d bytes, over report.max_size (%d)", fi.Size(), rc.MaxSize)
	case fi.Size() >= e.cfg.Limits.FileSize:
		// The analyzer, or a program it ran, may have been stopped at
		// the limit and gone on regardless: a report cut short is no
		// report.
		return nil, nil, scan.Errorf(scan.ReasonEngineError,
			"sandbox: the report is %d bytes, as large as limits.file_size allows: it may have been cut short", fi.Size())
	case fi.Size() == 0 && rc.Optional:
		return nil, nil, nil
	case fi.Size() == 0:
		return nil, nil, scan.Errorf(scan.ReasonEngineError,
			"sandbox: the analyzer exited without writing a report to $%s (set report.required: false if it writes none)", EnvReport)
	}

	// One pass hashes (and keeps the start for sniffing, or the whole
	// report when its JSON is needed), a second stores: the key of a
	// content-addressed store must be known before the bytes go in. The
	// first pass copies the report to a file of lazaret's own, which the
	// second reads: the report file itself is writable by the analyzer's
	// user, and bytes changed between the passes would be kept under the
	// key of others (replacing another report that has that key).
	h := sha256.New()
	wantDoc = wantDoc && rc.SignatureField != ""
	keep := proc.Head{Max: sniffSize}
	if wantDoc {
		keep.Max = int(min(rc.MaxSize, math.MaxInt))
	}
	dst := io.MultiWriter(h, &keep)
	var kept *os.File
	if e.cfg.Reports != nil {
		// Beside the report, in the run's folder, which only lazaret
		// may add to; removed with it, and here.
		if kept, err = os.CreateTemp(filepath.Dir(p), "kept-*"); err != nil {
			return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: keep report: %w", err)
		}
		defer func() {
			kept.Close()
			os.Remove(kept.Name())
		}()
		dst = io.MultiWriter(dst, kept)
	}
	n, err := io.Copy(dst, io.LimitReader(f, rc.MaxSize+1))
	if err != nil {
		return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: read report: %w", err)
	}
	if n > rc.MaxSize {
		return nil, nil, scan.Errorf(scan.ReasonEngineError, "sandbox: the report grew over report.max_size (%d)", rc.MaxSize)
	}
	if n >= e.cfg.Limits.FileSize {
		return nil, nil, scan.Errorf(scan.ReasonEngineError,
			"sandbox: the report grew as large as limits.file_size allows: it may have been cut short")
	}
	var doc map[string]any
	if wantDoc {
		// Not JSON, or not an object: no signatures from it.
		_ = json.Unmarshal(keep.Bytes(), &doc)
	}
	ref := &scan.Report{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, ContentType: rc.ContentType}
	if ref.ContentType == "" {
		// The first sniffSize bytes alone, whether or not the whole
		// report was kept for its JSON.
		b := keep.Bytes()
		ref.ContentType = sniff(b[:min(len(b), sniffSize)])
	}
	if e.cfg.Reports == nil {
		return nil, doc, nil
	}
	if _, err := kept.Seek(0, io.SeekStart); err != nil {
		return nil, doc, scan.Errorf(scan.ReasonEngineError, "sandbox: read report: %w", err)
	}
	put, err := e.cfg.Reports.Put(ctx, ref.SHA256, io.LimitReader(kept, n))
	if err == nil && put != n {
		err = fmt.Errorf("stored %d of %d bytes", put, n)
	}
	if err != nil {
		// The report is the point of an analyzer: a job without it
		// is retried rather than finished.
		return nil, doc, scan.Errorf(scan.ReasonEngineError, "sandbox: keep report: %w", err)
	}
	return ref, doc, nil
}

// sniff guesses a report's media type from its first bytes. JSON, the
// usual analyzer report, is recognised by its first character, since
// http.DetectContentType calls it plain text.
func sniff(head []byte) string {
	ct := http.DetectContentType(head)
	if ct == "text/plain; charset=utf-8" {
		if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			return "application/json"
		}
	}
	return ct
}
