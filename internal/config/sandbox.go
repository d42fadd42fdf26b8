package config

import (
	"fmt"
	"mime"
	"path"
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
func validateSandbox(field string, e Engine) []error {
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
