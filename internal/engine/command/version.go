package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/engine/proc"
)

// Version returns the engine's version: Config.Version, else the first
// line of Config.VersionCommand's output (cached for Config.VersionTTL),
// else a version derived from the command's files (see Config).
func (e *Engine) Version(ctx context.Context) (string, error) {
	switch {
	case e.cfg.Version != "":
		return e.cfg.Version, nil
	case len(e.cfg.VersionCommand) > 0:
		return e.commandVersion(ctx)
	}
	return e.derivedVersion(), nil
}

// commandVersion runs the version command, or answers from the cache. The
// lock is held while the command runs so that concurrent callers share one
// run instead of starting one each.
func (e *Engine) commandVersion(ctx context.Context) (string, error) {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	if e.version != "" && time.Since(e.versionAt) < e.cfg.VersionTTL {
		return e.version, nil
	}
	out := &proc.Head{Max: 4 << 10}
	st, err := e.run(ctx, e.cfg.VersionCommand, nil, out, min(e.cfg.Timeout, versionTimeout))
	if err != nil {
		return "", fmt.Errorf("command: version: %w", err)
	}
	if st.signaled || st.code != 0 {
		return "", fmt.Errorf("command: version: command ended with exit code %d, signal %v; output %q",
			st.code, st.signal, strings.TrimSpace(string(out.Bytes())))
	}
	line, _, _ := strings.Cut(string(out.Bytes()), "\n")
	line = strings.TrimSpace(strings.ToValidUTF8(line, "?"))
	if line == "" {
		return "", fmt.Errorf("command: version: empty first line of output")
	}
	e.version, e.versionAt = line, time.Now()
	return line, nil
}

// derivedVersion stands in for a version nobody configured. It must change
// when the signatures do, or the verdict cache would keep answering with
// verdicts from before an update; so it digests the command together with
// the size and modification time of its program and of every existing file
// or folder its arguments name (a yara rules file, a clamscan -d folder,
// whose modification time changes when freshclam renames new databases
// into it). It stats a few files per call, which is cheap next to a scan.
func (e *Engine) derivedVersion() string {
	h := sha256.New()
	for _, a := range e.cfg.Command {
		fmt.Fprintf(h, "%q\n", a)
	}
	stat := func(p string) {
		if p == "" || strings.Contains(p, "{") {
			return
		}
		if !filepath.IsAbs(p) && e.cfg.Dir != "" {
			p = filepath.Join(e.cfg.Dir, p)
		}
		proc.FileStamp(h, p)
	}
	if p, err := e.program(); err == nil {
		stat(p)
	}
	for _, a := range e.cfg.Command[1:] {
		stat(a)
		if _, v, ok := strings.Cut(a, "="); ok { // --database=/var/lib/clamav
			stat(v)
		}
	}
	return "command/" + hex.EncodeToString(h.Sum(nil))[:16]
}
