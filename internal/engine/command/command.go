// Package command runs any scanner CLI as a scan engine: clamscan,
// clamdscan, yara, or a site's own script (Pulp's "scan shell"). The
// command is an argv template, never a shell line: "{path}" is replaced by
// the name of a file holding the sample and "{name}" by the sample's name,
// each inside the one argv element where it appears, so no name can inject
// words or shell syntax.
//
// # Deciding a verdict
//
// The verdict comes from the command's exit status and its output (stdout
// and stderr together), and fails closed:
//
//   - Exit code in InfectedWhen.ExitCodes: infected. The findings are the
//     `signature` groups of every OutputMatches match; "unknown" when
//     nothing matched or no regexp is set.
//   - Exit code in CleanExitCodes and OutputMatches matched: infected (a
//     scanner such as yara exits 0 whether or not a rule matched).
//   - Exit code in CleanExitCodes and no match: clean, provided the whole
//     output was examined (see MaxOutput); otherwise an error.
//   - Anything else is an error, never clean: an exit code in neither list
//     (clamscan's 2), death by a signal (an OOM kill), a timeout (reason
//     timeout), a cancelled context, a command that cannot be started.
//
// Output matches count only with a listed exit code: a scanner that fails
// tends to print error lines that a loose regexp would read as findings.
//
// # Processes
//
// Each command runs in its own process group. On timeout or cancellation
// the whole group is killed, so a script's children (a scanner started by a
// shell script) die with it; when the command exits, whatever it left in
// its group is killed too. Only a process that left the group (setsid) can
// then still hold the output open; it is waited for at most a second, after
// which a sample that would be clean is an error instead, because what it
// might still print is unknown.
//
// The child gets a minimal environment (PATH, HOME, TMPDIR, LC_ALL=C, then
// Config.Env), not lazaret's, which may hold credentials.
//
// Sample files are private to lazaret's user (mode 0600). A scanner
// running as another user cannot read them: give clamdscan --stream or
// --fdpass, for example.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
)

// Type is the engine type in configurations.
const Type = "command"

// Placeholders replaced in Config.Command.
const (
	// PathPlaceholder is replaced by the absolute name of a file holding
	// exactly the sample's bytes.
	PathPlaceholder = "{path}"
	// NamePlaceholder is replaced by the sample's name, with control
	// characters and a leading '-' replaced by '_' (see Config.Command).
	NamePlaceholder = "{name}"
)

// Defaults applied by New.
const (
	DefaultTimeout    = 5 * time.Minute
	DefaultMaxOutput  = 64 << 10
	DefaultVersionTTL = time.Minute
	// MinMaxOutput is the smallest MaxOutput accepted: less would cut
	// ordinary scanner lines.
	MinMaxOutput = 1 << 10
)

// versionTimeout bounds a version command on top of Config.Timeout: asking
// a version should never take as long as a scan may.
const versionTimeout = 30 * time.Second

// InfectedWhen says how the command reports an infection. At least one of
// the fields must be set.
type InfectedWhen struct {
	// ExitCodes are the exit codes that mean "infected" (yaml:
	// exit_codes), e.g. [1] for clamscan and clamdscan.
	ExitCodes []int
	// OutputMatches is a regular expression (yaml: output_matches) run
	// over the output in multi-line mode, so ^ and $ anchor at lines; a
	// match must lie within one line. Its named group `signature`, if
	// any, names each finding: for clamscan
	// `^.*: (?P<signature>\S+) FOUND$`.
	OutputMatches string
}

// Config configures a command engine. The yaml names suggested for
// lazaret's configuration file are given with each field.
type Config struct {
	// Name is the engine's configured name (yaml: name).
	Name string
	// Command is the argv template (yaml: command). Command[0] is the
	// program, found in lazaret's PATH unless it contains a '/'; relative
	// names are relative to Dir. {path} and {name} are replaced within
	// later elements; they may not appear in Command[0]. {path} is
	// required unless Stdin is set, because a command that does not see
	// the sample would call everything clean.
	Command []string
	// InfectedWhen says how an infection is reported (yaml:
	// infected_when).
	InfectedWhen InfectedWhen
	// CleanExitCodes are the exit codes that can mean "clean" (yaml:
	// clean_exit_codes); empty means [0]. They must not overlap
	// InfectedWhen.ExitCodes.
	CleanExitCodes []int
	// Timeout bounds one scan (yaml: timeout); zero or less means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxOutput bounds the memory spent on output (yaml: max_output);
	// zero or less means DefaultMaxOutput. Output is examined as it
	// streams and never buffered whole. A line longer than MaxOutput is
	// cut, and since a match in the cut part cannot be ruled out, the
	// sample is then not clean when OutputMatches is set.
	MaxOutput int64
	// Stdin, when set, also gives the sample on the command's standard
	// input (yaml: stdin), for scanners that read "-"; {path} is then
	// optional. Otherwise standard input is empty.
	Stdin bool
	// Version is a fixed version string (yaml: version). It is part of
	// the verdict cache key, so change it when the signatures change.
	Version string
	// VersionCommand is run to learn the version (yaml:
	// version_command): the trimmed first line of its output, cached for
	// VersionTTL. It must exit 0. Exclusive with Version. With neither,
	// the version is derived from the command and the size and
	// modification time of its program and of every existing file or
	// folder named in it (a rules file, a signature folder), so an update
	// of those changes it.
	VersionCommand []string
	// VersionTTL is how long a VersionCommand answer is kept (yaml:
	// version_ttl); zero or less means DefaultVersionTTL.
	VersionTTL time.Duration
	// Env holds extra environment variables for the command (yaml: env).
	Env map[string]string
	// Dir is the command's working folder (yaml: dir); "" means
	// lazaret's.
	Dir string
}

// Engine runs a scanner command for each sample. It implements
// scan.Engine and scan.Pinger and is safe for concurrent use.
type Engine struct {
	cfg      Config
	re       *regexp.Regexp // nil without OutputMatches
	sigIndex int            // index of the signature group in re, or -1
	env      []string
	logger   *slog.Logger

	vmu       sync.Mutex // serialises version commands, so callers share one run
	version   string
	versionAt time.Time
}

var (
	_ scan.Engine = (*Engine)(nil)
	_ scan.Pinger = (*Engine)(nil)
)

// New validates cfg, applies its defaults and returns the engine. The
// error names every invalid field. A nil logger discards.
func New(cfg Config, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The engine keeps its own copies: a caller changing its config later
	// must not change, or race with, running scans.
	cfg.Command = slices.Clone(cfg.Command)
	cfg.VersionCommand = slices.Clone(cfg.VersionCommand)
	cfg.InfectedWhen.ExitCodes = slices.Clone(cfg.InfectedWhen.ExitCodes)
	cfg.CleanExitCodes = slices.Clone(cfg.CleanExitCodes)
	cfg.Env = maps.Clone(cfg.Env)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	if cfg.VersionTTL <= 0 {
		cfg.VersionTTL = DefaultVersionTTL
	}
	if len(cfg.CleanExitCodes) == 0 {
		cfg.CleanExitCodes = []int{0}
	}
	e := &Engine{cfg: cfg, sigIndex: -1, logger: logger.With("engine", cfg.Name)}

	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if cfg.Name == "" {
		bad("name", "required")
	}
	switch {
	case len(cfg.Command) == 0 || cfg.Command[0] == "":
		bad("command", "required: the program and its arguments")
	case hasPlaceholder(cfg.Command[:1]):
		bad("command", "%s and %s may not be in the program name", PathPlaceholder, NamePlaceholder)
	case !cfg.Stdin && !slices.ContainsFunc(cfg.Command[1:], func(a string) bool { return strings.Contains(a, PathPlaceholder) }):
		bad("command", "no %s: the command would never see the sample (set stdin to pass it on standard input)", PathPlaceholder)
	}
	iw := cfg.InfectedWhen
	if len(iw.ExitCodes) == 0 && iw.OutputMatches == "" {
		bad("infected_when", "needs exit_codes or output_matches, else the command could never report an infection")
	}
	if iw.OutputMatches != "" {
		re, err := regexp.Compile("(?m)" + iw.OutputMatches)
		switch {
		case err != nil:
			bad("infected_when.output_matches", "%v", err)
		case re.MatchString(""):
			bad("infected_when.output_matches", "matches empty output, so every sample would be infected")
		default:
			e.re, e.sigIndex = re, re.SubexpIndex("signature")
		}
	}
	for _, c := range iw.ExitCodes {
		if slices.Contains(cfg.CleanExitCodes, c) {
			bad("clean_exit_codes", "exit code %d is also in infected_when.exit_codes", c)
		}
	}
	for _, f := range []struct {
		name  string
		codes []int
	}{{"infected_when.exit_codes", iw.ExitCodes}, {"clean_exit_codes", cfg.CleanExitCodes}} {
		for _, c := range f.codes {
			if c < 0 || c > 255 {
				bad(f.name, "exit code %d is not in 0-255", c)
			}
		}
	}
	if cfg.MaxOutput < MinMaxOutput {
		bad("max_output", "must be at least %d bytes", MinMaxOutput)
	}
	if cfg.Version != "" && len(cfg.VersionCommand) > 0 {
		bad("version_command", "set version or version_command, not both")
	}
	if len(cfg.VersionCommand) > 0 && (cfg.VersionCommand[0] == "" || hasPlaceholder(cfg.VersionCommand)) {
		bad("version_command", "needs a program and no %s or %s", PathPlaceholder, NamePlaceholder)
	}
	for k := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("env", "invalid variable name %q", k)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("command: engine %q: invalid config: %w", cfg.Name, errors.Join(errs...))
	}
	e.env = environ(cfg.Env)

	if _, err := e.program(); err != nil {
		// Not fatal: the scanner may be installed later. Every scan is
		// an error until then, and Ping says why.
		e.logger.Warn("scanner command not found", "command", cfg.Command[0], "error", err)
	}
	if cfg.Version == "" && len(cfg.VersionCommand) == 0 {
		e.logger.Info("no version or version_command: the version is derived from the command's files")
	}
	return e, nil
}

func hasPlaceholder(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return strings.Contains(a, PathPlaceholder) || strings.Contains(a, NamePlaceholder)
	})
}

// environ builds the child's environment. lazaret's own environment may
// hold object store and broker credentials, which a scanner has no use
// for, so only what programs commonly need is passed on. LC_ALL=C keeps
// scanners' messages in English, which OutputMatches relies on. os/exec
// keeps the last of duplicate keys, so Env overrides all of these.
func environ(extra map[string]string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, "LC_ALL=C")
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// Name returns the configured name.
func (e *Engine) Name() string { return e.cfg.Name }

// Type returns "command".
func (e *Engine) Type() string { return Type }

// Ping reports whether the program exists and is executable; it does not
// run it.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.program(); err != nil {
		return fmt.Errorf("command: ping: %w", err)
	}
	return nil
}

// program resolves Command[0] the way os/exec will.
func (e *Engine) program() (string, error) {
	p := e.cfg.Command[0]
	if strings.Contains(p, "/") {
		if !filepath.IsAbs(p) && e.cfg.Dir != "" {
			p = filepath.Join(e.cfg.Dir, p)
		}
		if err := proc.Executable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	return exec.LookPath(p)
}

// Scan runs the command on the sample and decides its verdict by the rules
// in the package documentation. Failures are returned as errors carrying a
// scan.Reason.
func (e *Engine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	if s.Body == nil {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "command: sample %q has no body", s.Name)
	}
	path, err := s.Body.Path()
	if err != nil {
		return scan.Result{}, scan.Errorf(scan.ReasonIO, "command: sample file: %w", err)
	}
	// The command may run in another folder (Dir).
	if path, err = filepath.Abs(path); err != nil {
		return scan.Result{}, scan.Errorf(scan.ReasonIO, "command: sample file: %w", err)
	}
	var stdin *os.File
	if e.cfg.Stdin {
		// An *os.File is handed to the child as is: no copying goroutine
		// that could block on a command which does not read it.
		if stdin, err = os.Open(path); err != nil {
			return scan.Result{}, scan.Errorf(scan.ReasonIO, "command: open sample: %w", err)
		}
		defer stdin.Close()
	}

	start := time.Now()
	out := newOutput(e.re, e.sigIndex, int(e.cfg.MaxOutput))
	st, err := e.run(ctx, e.argv(path, s.Name), stdin, out, e.cfg.Timeout)
	if err != nil {
		return scan.Result{}, err
	}
	out.flush()
	res, err := e.decide(st, out)
	e.logger.DebugContext(ctx, "command done", "sha256", s.SHA256, "exit_code", st.code,
		"signal", st.signal, "verdict", res.Verdict, "output_bytes", out.total,
		"duration", time.Since(start))
	return res, err
}

// argv fills the template. Each placeholder is replaced inside its own
// element, in one pass, so a name containing "{path}" stays as it is.
func (e *Engine) argv(path, name string) []string {
	return proc.Argv(e.cfg.Command, strings.NewReplacer(PathPlaceholder, path, NamePlaceholder, proc.SafeArg(name)))
}

// decide turns a finished command into a verdict; see the package
// documentation.
func (e *Engine) decide(st status, out *output) (scan.Result, error) {
	if st.signaled {
		hint := ""
		if st.signal == syscall.SIGKILL {
			hint = ", out of memory?" // the OOM killer's signal
		}
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
			"command: killed by signal %d (%v%s); output tail %q", int(st.signal), st.signal, hint, out.end.String())
	}
	infected := slices.Contains(e.cfg.InfectedWhen.ExitCodes, st.code)
	clean := slices.Contains(e.cfg.CleanExitCodes, st.code)
	switch {
	case infected, clean && out.matched:
		return scan.Result{Verdict: scan.Infected, Findings: out.findings()}, nil
	case clean && e.re != nil && out.cut:
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
			"command: an output line was longer than max_output (%d bytes), so a match cannot be ruled out", e.cfg.MaxOutput)
	case clean && e.re != nil && !st.drained:
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
			"command: output still open after the command exited (held by a process outside its group), so a match cannot be ruled out")
	case clean:
		return scan.Result{Verdict: scan.Clean}, nil
	}
	note := ""
	if out.matched {
		note = fmt.Sprintf(" (output also matched: %s)", strings.Join(out.signatureNames(), ", "))
	}
	return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
		"command: exit code %d is neither clean %v nor infected %v%s; output tail %q",
		st.code, e.cfg.CleanExitCodes, e.cfg.InfectedWhen.ExitCodes, note, out.end.String())
}
