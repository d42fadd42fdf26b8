// Package cli is lazaret's command line: it parses arguments, loads the
// configuration and hands off to the packages that do the work. Nothing in
// it calls os.Exit; Run returns the exit code, so tests run commands
// in-process.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/lazaret/lazaret/internal/config"
)

// Exit codes, as clamdscan's.
const (
	ExitClean    = 0
	ExitInfected = 1
	ExitError    = 2
)

// Env is the process environment a command runs in.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether a writer is a terminal (for progress
	// bars); nil means "check *os.File descriptors".
	IsTerminal func(w io.Writer) bool
	// Exec replaces the process with the program at path, given args
	// (args[0] is its name) and the process's environment, as
	// syscall.Exec does; it returns only when that failed. `lazaret
	// operator` hands over to lazaret-operator with it. nil (in tests):
	// `lazaret operator` fails.
	Exec func(path string, args []string) error
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = ""

type globals struct {
	Config string `help:"Configuration file (YAML). Also LAZARET_CONFIG." type:"path" placeholder:"FILE"`
}

type root struct {
	globals
	Serve    serveCmd    `cmd:"" help:"Run the API, the workers and the console."`
	Worker   workerCmd   `cmd:"" help:"Run queue workers only, for scale-out."`
	Scan     scanCmd     `cmd:"" help:"Scan files and folders; exit 0 all clean, 1 infected, 2 error or skipped."`
	Sweep    sweepCmd    `cmd:"" help:"Scan what is already in a bucket prefix (s3://BUCKET/PREFIX) or a folder; resumable."`
	Proxy    proxyCmd    `cmd:"" help:"Store-scan-forward gate in front of a repository: serve only what was scanned clean (409 for infected)."`
	Rescan   rescanCmd   `cmd:"" help:"Re-check stored verdicts after signatures changed; changed verdicts re-apply effects and notify."`
	Engines  enginesCmd  `cmd:"" help:"List the configured engines with versions and health."`
	Operator operatorCmd `cmd:"" passthrough:"" help:"Kubernetes controller for KubeAV's VirusScan and ScheduledVirusScan resources: runs the lazaret-operator program with these arguments (lazaret operator --help lists them)."`
	Version  versionCmd  `cmd:"" help:"Print lazaret's version."`
}

// Run runs the command line args and returns the exit code.
func Run(ctx context.Context, args []string, env Env) (code int) {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = eofReader{}
	}
	var r root
	kctx, code, exited, err := Parse(&r, "lazaret", "Scan untrusted files with real engines, keep every verdict, act on it.", args, env)
	if exited {
		return code
	}
	if err != nil {
		return errorf(env, err)
	}
	if r.Config == "" {
		r.Config = env.Getenv("LAZARET_CONFIG")
	}
	switch kctx.Command() {
	case "version":
		return r.Version.run(env)
	case "serve":
		return r.Serve.run(ctx, &r.globals, env)
	case "worker":
		return r.Worker.run(ctx, &r.globals, env)
	case "rescan":
		return r.Rescan.run(ctx, &r.globals, env)
	case "proxy":
		return r.Proxy.run(ctx, &r.globals, env)
	case "sweep <target>":
		return r.Sweep.run(ctx, &r.globals, env)
	case "engines":
		return r.Engines.run(ctx, &r.globals, env)
	case "operator", "operator <args>":
		return r.Operator.run(&r.globals, env)
	default: // scan <path> and friends
		return r.Scan.run(ctx, &r.globals, env)
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// loadConfig loads the configuration named by the global flag.
func (g *globals) loadConfig(env Env) (config.Config, error) {
	return config.Load(g.Config, env.Getenv)
}

// NewLogger returns a logger writing to w (stderr) at the configured level
// and in the configured format, the one every command uses.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func isTerminal(env Env, w io.Writer) bool {
	if env.IsTerminal != nil {
		return env.IsTerminal(w)
	}
	f, ok := w.(*os.File)
	return ok && termIsTerminal(int(f.Fd()))
}

type versionCmd struct{}

func (versionCmd) run(env Env) int {
	fmt.Fprintln(env.Stdout, "lazaret", BuildVersion())
	return ExitClean
}

// BuildVersion is lazaret's version: Version when set at build time, else
// the module version and VCS revision the binary was built from.
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return v + " (" + s.Value[:12] + ")"
			}
		}
		return v
	}
	return "(devel)"
}

// errorf prints an error the way every command does.
func errorf(env Env, err error) int {
	fmt.Fprintf(env.Stderr, "lazaret: %v\n", err)
	return ExitError
}
