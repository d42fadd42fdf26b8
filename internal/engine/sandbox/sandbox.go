// Package sandbox runs analyzer programs as scan engines, the way
// menagerie runs its Docker engines, without Docker: each run of the
// analyzer on a sample is isolated, bounded in time, memory, CPU, file
// size and processes, and leaves a report file that lazaret keeps with the
// job (GET /v1/jobs/{id}/report).
//
// # Isolation
//
// With isolation bwrap (the default) every run is a bubblewrap sandbox:
// new user, PID, network, IPC, UTS and cgroup namespaces (so no network at
// all, not even the host's loopback), a fresh root holding only read-only
// binds of the system folders (/usr, /bin, /sbin, /lib*) and of
// Config.ROBinds, a size-bounded tmpfs at /tmp, the sample bound read-only
// at Mountpoint/InputFilename and one writable file, the report at
// /output/report. The analyzer runs as uid and gid 65534 inside, in a new
// session, with no capabilities, and dies with lazaret. When lazaret runs
// as root the whole sandbox also runs as an unprivileged host user
// (Config.User, 65534 by default), with a private copy of the sample.
// New checks that all this works on the host, and refuses to build the
// engine when it does not: a configured isolation that is unavailable is
// never silently dropped.
//
// With isolation none the analyzer runs on the host with the limits and
// its own process group only: for development, or for analyzers that are
// trusted.
//
// Limits are rlimits set by prlimit(1) (util-linux) before the sandbox
// starts: address space, CPU time, file size, processes, no core dumps.
// On timeout the run's process group is killed, and with bwrap the PID
// namespace ends with it, so no process the analyzer started survives.
//
// # Deciding a verdict
//
// Fail-closed, in this order:
//
//   - a sample larger than MaxSize is skipped (too_large), unrun;
//   - a timeout (the engine's or the caller's deadline) is an error with
//     reason timeout;
//   - an analyzer that could not be started, or a sandbox that could not
//     be set up, is an error (engine_error);
//   - exit code 0 is clean, 1 infected; any other exit code, death by a
//     signal (a limit: SIGXCPU, SIGXFSZ, or SIGKILL) is an error;
//   - a report larger than Report.MaxSize, one as large as
//     Limits.FileSize allows (it may have been cut there), a missing
//     report when one is required, or one that cannot be kept, is an
//     error (an infected verdict stands, with the error noted).
//
// An infected sample's findings are named by Report.SignatureField of a
// JSON report, else by the first line the analyzer printed on standard
// output, else "unknown".
package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
)

// Type is the engine type in configurations.
const Type = "sandbox"

// Isolation modes (Config.Isolation).
const (
	IsolationBwrap = "bwrap"
	IsolationNone  = "none"
)

// Placeholders replaced in Config.Command, each within its own argument.
const (
	// PathPlaceholder is the sample as the analyzer sees it.
	PathPlaceholder = "{path}"
	// NamePlaceholder is the sample's name, made safe as an argument.
	NamePlaceholder = "{name}"
	// ReportPlaceholder is the file the analyzer writes its report to.
	ReportPlaceholder = "{report}"
)

// Environment variables the analyzer is given, besides PATH, HOME, TMPDIR
// and LC_ALL=C.
const (
	EnvReport     = "LAZARET_REPORT"      // the report file to write
	EnvSample     = "LAZARET_SAMPLE"      // the sample (read-only)
	EnvSampleName = "LAZARET_SAMPLE_NAME" // the sample's name, made safe
)

// Defaults applied by New.
const (
	DefaultTimeout       = 5 * time.Minute
	DefaultWorkers       = 2
	DefaultMountpoint    = "/input"
	DefaultInputFilename = "sample"
	DefaultMemory        = 2 << 30
	DefaultFileSize      = 64 << 20
	DefaultProcesses     = 64
	DefaultTmpSize       = 256 << 20
	DefaultMaxReport     = 16 << 20
	// NobodyID is the uid and gid inside a bwrap sandbox, and the host
	// user a sandbox runs as when lazaret is root and Config.User is
	// empty.
	NobodyID = 65534
)

// reportInside is the report file inside a bwrap sandbox.
const reportInside = "/output/report"

// sandboxPath is the analyzer's PATH.
const sandboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Limits bound one analyzer run. Zero fields take the defaults.
type Limits struct {
	// Memory is the address space limit in bytes (RLIMIT_AS): virtual
	// memory, so a program that reserves more than it uses (a JVM)
	// needs more than its working set.
	Memory int64
	// CPUTime is each process's CPU time limit (RLIMIT_CPU); the default
	// is Timeout.
	CPUTime time.Duration
	// FileSize is the largest file the analyzer may write (RLIMIT_FSIZE),
	// the report included.
	FileSize int64
	// Processes bounds the processes of the user the analyzer runs as
	// (RLIMIT_NPROC). The kernel does not enforce it for root, hence the
	// unprivileged default user when lazaret is root.
	Processes int
	// TmpSize is the size of the tmpfs at /tmp (bwrap only), which
	// counts as memory.
	TmpSize int64
}

// ReportConfig says how the report is read and kept.
type ReportConfig struct {
	// MaxSize bounds the report (default DefaultMaxReport); a larger one
	// makes the scan an error.
	MaxSize int64
	// ContentType is the report's media type; "" means sniffed from its
	// first bytes.
	ContentType string
	// Optional lets a run that wrote no report (an empty file) stand;
	// otherwise it is an error, because an analyzer that crashed after
	// exiting 0 looks just like that.
	Optional bool
	// SignatureField names a top-level field of a JSON report whose
	// string, or list of strings, names an infected sample's findings.
	SignatureField string
}

// ReportStore keeps reports under their SHA-256 (hex); *blob.Dir is one.
type ReportStore interface {
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
}

// Config configures a sandbox engine.
type Config struct {
	// Name is the engine's configured name.
	Name string
	// Command is the analyzer's argv; {path}, {name} and {report} are
	// replaced within Command[1:]. Command[0] is an absolute path or a
	// name looked up in the sandbox's PATH; with bwrap it must lie in a
	// system folder or in ROBinds.
	Command []string
	// Isolation is IsolationBwrap ("" too) or IsolationNone.
	Isolation string
	// Timeout bounds one run; the default is DefaultTimeout.
	Timeout time.Duration
	// Workers bounds the runs at once (menagerie's workers); samples
	// beyond it wait, within their caller's deadline.
	Workers int
	// MaxSize skips larger samples as too_large; 0 means no limit of the
	// engine's own.
	MaxSize int64
	// Mountpoint and InputFilename place the sample inside a bwrap
	// sandbox (menagerie's mountpoint and inputfilename).
	Mountpoint    string
	InputFilename string
	// User is the host user the analyzer runs as, "UID[:GID]" or a user
	// name. Only root can choose; when lazaret is root, "" means
	// NobodyID, and "0" keeps root.
	User string
	// ROBinds are host paths the analyzer sees read-only at the same
	// path (bwrap).
	ROBinds []string
	// Env adds variables to the analyzer's minimal environment.
	Env map[string]string
	// Version is a fixed version; "" derives one from the command and
	// its files (see Version).
	Version string
	// OnDemand runs the engine only for jobs that name it.
	OnDemand bool
	Limits   Limits
	Report   ReportConfig
	// Reports keeps reports; nil drops them (a one-off CLI scan).
	Reports ReportStore
}

// Engine runs an analyzer on each sample. It implements scan.Engine,
// scan.Pinger and scan.OnDemander, and is safe for concurrent use.
type Engine struct {
	cfg     Config
	prlimit string   // path of prlimit(1)
	bwrap   string   // path of bwrap(1); "" with isolation none
	system  []string // bwrap arguments binding the system folders
	env     []string // Config.Env as sorted "k=v"
	// disableUserns is whether bwrap knows --disable-userns (0.8 on).
	disableUserns bool
	drop          bool // runs switch to uid/gid
	uid           uint32
	gid           uint32
	sem           chan struct{}
	logger        *slog.Logger
}

var (
	_ scan.Engine     = (*Engine)(nil)
	_ scan.Pinger     = (*Engine)(nil)
	_ scan.OnDemander = (*Engine)(nil)
)

// probeTimeout bounds New's test run of the sandbox.
const probeTimeout = 30 * time.Second

// New validates cfg, applies its defaults, checks that the isolation and
// the limits work on this host by running an empty sandbox, and returns
// the engine. It fails, naming the fields, when anything is wrong or
// unavailable: an engine that cannot isolate as configured must not run.
// A nil logger discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Command = slices.Clone(cfg.Command)
	cfg.ROBinds = slices.Clone(cfg.ROBinds)
	cfg.Env = maps.Clone(cfg.Env)
	applyDefaults(&cfg)
	e := &Engine{cfg: cfg, logger: logger.With("engine", cfg.Name)}
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("sandbox: engine %q: invalid config: %w", cfg.Name, err)
	}
	e.sem = make(chan struct{}, cfg.Workers)
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		e.env = append(e.env, k+"="+cfg.Env[k])
	}

	var err error
	if e.prlimit, err = exec.LookPath("prlimit"); err != nil {
		return nil, fmt.Errorf("sandbox: engine %q: prlimit (util-linux) is needed to apply the limits: %w", cfg.Name, err)
	}
	switch cfg.Isolation {
	case IsolationBwrap:
		if e.bwrap, err = exec.LookPath("bwrap"); err != nil {
			return nil, fmt.Errorf("sandbox: engine %q: isolation bwrap: %w (install bubblewrap, or set isolation: none)", cfg.Name, err)
		}
		e.system = systemBinds()
		e.disableUserns = bwrapFeatures(ctx, e.bwrap)
	case IsolationNone:
		e.logger.Warn("isolation none: the analyzer runs on the host with only rlimits and a process group around it")
	}
	if !e.drop && os.Geteuid() == 0 {
		e.logger.Warn("the analyzer runs as root: the processes limit is not enforced for root")
	}
	if err := e.probe(ctx); err != nil {
		return nil, fmt.Errorf("sandbox: engine %q: a %s sandbox does not work here as configured: %w", cfg.Name, cfg.Isolation, err)
	}
	if _, err := e.program(); err != nil {
		// Not fatal, as for command engines: the analyzer may be
		// installed later. Scans are errors until then, and Ping says why.
		e.logger.Warn("analyzer program not found", "command", cfg.Command[0], "error", err)
	}
	return e, nil
}

func applyDefaults(cfg *Config) {
	if cfg.Isolation == "" {
		cfg.Isolation = IsolationBwrap
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Mountpoint == "" {
		cfg.Mountpoint = DefaultMountpoint
	}
	if cfg.InputFilename == "" {
		cfg.InputFilename = DefaultInputFilename
	}
	l := &cfg.Limits
	if l.Memory == 0 {
		l.Memory = DefaultMemory
	}
	if l.CPUTime == 0 {
		l.CPUTime = cfg.Timeout
	}
	if l.FileSize == 0 {
		l.FileSize = DefaultFileSize
	}
	if l.Processes == 0 {
		l.Processes = DefaultProcesses
	}
	if l.TmpSize == 0 {
		l.TmpSize = DefaultTmpSize
	}
	if cfg.Report.MaxSize == 0 {
		cfg.Report.MaxSize = DefaultMaxReport
	}
}

// reservedTop are the top folders of a bwrap sandbox that the sample's
// mountpoint may not take over.
var reservedTop = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp", "output"}

// validate checks the configuration and resolves the user.
func (e *Engine) validate() error {
	cfg := e.cfg
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if cfg.Name == "" {
		bad("name", "required")
	}
	switch {
	case len(cfg.Command) == 0 || cfg.Command[0] == "":
		bad("command", "required: the analyzer and its arguments")
	case hasPlaceholder(cfg.Command[:1]):
		bad("command", "placeholders may not be in the program name")
	case !filepath.IsAbs(cfg.Command[0]) && strings.Contains(cfg.Command[0], "/"):
		bad("command", "%q: the program is an absolute path or a name looked up in PATH", cfg.Command[0])
	}
	switch cfg.Isolation {
	case IsolationBwrap, IsolationNone:
	default:
		bad("isolation", "%q is not one of bwrap, none", cfg.Isolation)
	}
	if cfg.Workers < 0 {
		bad("workers", "must not be negative")
	}
	if cfg.MaxSize < 0 {
		bad("max_size", "must not be negative")
	}
	mp := cfg.Mountpoint
	top, _, _ := strings.Cut(strings.TrimPrefix(path.Clean(mp), "/"), "/")
	if !path.IsAbs(mp) || path.Clean(mp) != mp || mp == "/" || slices.Contains(reservedTop, top) {
		bad("mountpoint", "%q: want a clean absolute folder outside /%s", mp, strings.Join(reservedTop, ", /"))
	}
	if n := cfg.InputFilename; strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
		bad("input_filename", "%q is not a file name", n)
	}
	for i, b := range cfg.ROBinds {
		if !filepath.IsAbs(b) || filepath.Clean(b) == "/" {
			bad(fmt.Sprintf("ro_binds[%d]", i), "%q: want an absolute path other than /", b)
		} else if _, err := os.Stat(b); err != nil {
			bad(fmt.Sprintf("ro_binds[%d]", i), "%v", err)
		}
	}
	if cfg.Isolation == IsolationBwrap && len(cfg.Command) > 0 && filepath.IsAbs(cfg.Command[0]) && !e.visible(cfg.Command[0]) {
		bad("command", "%q is not inside the sandbox: add its folder to ro_binds", cfg.Command[0])
	}
	l := cfg.Limits
	if l.Memory < 0 || l.CPUTime < 0 || l.FileSize < 0 || l.Processes < 0 || l.TmpSize < 0 {
		bad("limits", "must not be negative")
	}
	if cfg.Report.MaxSize < 0 {
		bad("report.max_size", "must not be negative")
	}
	if ct := cfg.Report.ContentType; ct != "" {
		if _, _, err := mime.ParseMediaType(ct); err != nil {
			bad("report.content_type", "%q: %v", ct, err)
		}
	}
	for k := range cfg.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			bad("env", "invalid variable name %q", k)
		case k == EnvReport || k == EnvSample || k == EnvSampleName:
			bad("env", "%s is set by the engine", k)
		}
	}
	if err := e.resolveUser(); err != nil {
		bad("user", "%v", err)
	}
	return errors.Join(errs...)
}

// visible reports whether an absolute host path is inside a bwrap
// sandbox: in a system folder or in a read-only bind.
func (e *Engine) visible(p string) bool {
	p = filepath.Clean(p)
	for _, root := range append(systemRoots(), e.cfg.ROBinds...) {
		root = filepath.Clean(root)
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

// resolveUser decides which host user runs the analyzer. Only root can
// switch users; root switches to nobody unless told otherwise, because
// the kernel enforces no process limit on root, and a root-owned sandbox
// would own whatever files it reaches.
func (e *Engine) resolveUser() error {
	euid := os.Geteuid()
	spec := e.cfg.User
	if spec == "" {
		if euid == 0 {
			e.drop, e.uid, e.gid = true, NobodyID, NobodyID
		}
		return nil
	}
	uid, gid, err := parseUser(spec)
	if err != nil {
		return err
	}
	if euid != 0 {
		if uid != uint32(euid) {
			return fmt.Errorf("%q: lazaret is not root, so analyzers run as its own user (uid %d)", spec, euid)
		}
		return nil
	}
	if uid != 0 {
		e.drop, e.uid, e.gid = true, uid, gid
	}
	return nil
}

// parseUser reads "UID", "UID:GID" or a user name.
func parseUser(spec string) (uid, gid uint32, err error) {
	us, gs, hasGID := strings.Cut(spec, ":")
	if n, err := strconv.ParseUint(us, 10, 32); err == nil {
		uid, gid = uint32(n), uint32(n)
	} else {
		u, err := user.Lookup(us)
		if err != nil {
			return 0, 0, fmt.Errorf("%q: %w", spec, err)
		}
		nu, err1 := strconv.ParseUint(u.Uid, 10, 32)
		ng, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("%q: user has no numeric ids", spec)
		}
		uid, gid = uint32(nu), uint32(ng)
	}
	if hasGID {
		n, err := strconv.ParseUint(gs, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("%q: the group is a number", spec)
		}
		gid = uint32(n)
	}
	return uid, gid, nil
}

func hasPlaceholder(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return strings.Contains(a, PathPlaceholder) || strings.Contains(a, NamePlaceholder) || strings.Contains(a, ReportPlaceholder)
	})
}

// Name returns the configured name.
func (e *Engine) Name() string { return e.cfg.Name }

// Type returns "sandbox".
func (e *Engine) Type() string { return Type }

// OnDemand reports whether the engine runs only for jobs that name it.
func (e *Engine) OnDemand() bool { return e.cfg.OnDemand }

// Ping reports whether the analyzer program exists; it does not run it.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.program(); err != nil {
		return fmt.Errorf("sandbox: ping: %w", err)
	}
	return nil
}

// program finds Command[0] on the host: an absolute path as it is (a
// bwrap sandbox shows it at the same path), a bare name in the sandbox's
// PATH, whose folders are the host's.
func (e *Engine) program() (string, error) {
	p := e.cfg.Command[0]
	if filepath.IsAbs(p) {
		return p, proc.Executable(p)
	}
	for _, dir := range filepath.SplitList(sandboxPath) {
		if c := filepath.Join(dir, p); proc.Executable(c) == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", p, sandboxPath)
}

// Version returns Config.Version, or one derived from the command, the
// isolation and the size and modification time of the program and of
// every existing file or folder the command names or binds, so that
// updating the analyzer or its rules changes the verdict cache key.
func (e *Engine) Version(ctx context.Context) (string, error) {
	if e.cfg.Version != "" {
		return e.cfg.Version, nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s\n", e.cfg.Isolation, e.cfg.Mountpoint, e.cfg.InputFilename)
	for _, a := range e.cfg.Command {
		fmt.Fprintf(h, "%q\n", a)
	}
	stat := func(p string) {
		if filepath.IsAbs(p) {
			proc.FileStamp(h, p)
		}
	}
	if p, err := e.program(); err == nil {
		stat(p)
	}
	for _, a := range e.cfg.Command[1:] {
		stat(a)
	}
	for _, b := range e.cfg.ROBinds {
		stat(b)
	}
	return "sandbox/" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// probe runs a sandbox set up as for a scan (limits, user,
// isolation), so that New fails when this host cannot isolate as
// configured: no bubblewrap, no user namespaces, a user that cannot be
// switched to or cannot reach the sample.
func (e *Engine) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	body := spool.Bytes(nil) // an empty sample, in a file if the run wants one
	defer body.Close()
	w, err := e.prepare(ctx, body.Sample("probe"))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer w.remove()
	rs := e.spec(w, "probe")
	rs.argv = []string{"/bin/sh", "-c", `test -r "$` + EnvSample + `" && test -w "$` + EnvReport + `"`}
	out, err := e.execute(ctx, rs)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if !out.started || out.signaled || out.code != 0 {
		hint := ""
		if e.drop {
			hint = fmt.Sprintf(" (uid %d must be able to pass through the folders above %s)", e.uid, w.dir)
		}
		return fmt.Errorf("probe: a sandbox testing that it can read the sample and write the report ended with %s; the set-up with %s%s; %s",
			describeExit(out, e.cfg.Isolation == IsolationBwrap), out.wrapper, hint, tails(out))
	}
	return nil
}
