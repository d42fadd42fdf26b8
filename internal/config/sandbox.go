package config

import (
	"fmt"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Isolation values of sandbox engines.
const (
	IsolationBwrap = "bwrap"
	IsolationNone  = "none"
)

// validateSandbox checks what can be checked of a sandbox engine without
// the host: the engine checks the rest (the program, bubblewrap, the
// user) when it is built, and refuses to start without them.
func validateSandbox(field string, e Engine, dataDir string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, key, fmt.Sprintf(format, args...)))
	}
	if len(e.Command) == 0 || e.Command[0] == "" {
		bad("command", "a sandbox engine needs the analyzer's command")
	}
	switch e.Isolation {
	case "", IsolationBwrap, IsolationNone:
	default:
		bad("isolation", "%q is not one of bwrap, none", e.Isolation)
	}
	if e.Workers < 0 {
		bad("workers", "must not be negative")
	}
	if e.Mountpoint != "" && (!path.IsAbs(e.Mountpoint) || path.Clean(e.Mountpoint) == "/") {
		bad("mountpoint", "%q is not an absolute folder below /", e.Mountpoint)
	}
	if n := e.InputFilename; n != "" && (strings.ContainsAny(n, "/\x00") || n == "." || n == "..") {
		bad("input_filename", "%q is not a file name", n)
	}
	for i, b := range e.ROBinds {
		if !path.IsAbs(b) {
			bad(fmt.Sprintf("ro_binds[%d]", i), "%q is not an absolute path", b)
			continue
		}
		// Other jobs' samples, spool files and reports live in the data
		// folder and the temporary folder: an analyzer sees its own
		// sample alone. (A folder of its own below the temporary one is
		// fine: the analyzer may be kept there.)
		b = filepath.Clean(b)
		if d, err := filepath.Abs(dataDir); err == nil && dataDir != "" && (within(d, b) || within(b, d)) {
			bad(fmt.Sprintf("ro_binds[%d]", i), "%q would show the analyzer data_dir (%s), which holds other samples and reports", b, d)
		}
		if t := filepath.Clean(os.TempDir()); within(t, b) {
			bad(fmt.Sprintf("ro_binds[%d]", i), "%q would show the analyzer the temporary folder (%s), which holds other samples", b, t)
		}
	}
	if l := e.Limits; l != nil {
		if l.CPUTime < 0 {
			bad("limits.cpu_time", "must not be negative")
		}
		if l.Processes < 0 {
			bad("limits.processes", "must not be negative")
		}
	}
	if r := e.Report; r != nil && r.ContentType != "" {
		if _, _, err := mime.ParseMediaType(r.ContentType); err != nil {
			bad("report.content_type", "%q: %v", r.ContentType, err)
		}
	}
	return errs
}

// within reports whether path p is dir or lies below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
