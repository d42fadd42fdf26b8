// Package proc holds what the engines that run an external program share
// about running it: a sample's name made safe as an argument and the
// command template filled with it, the killing of the program's process
// group, the errors of a run stopped by its context, bounded capture of
// its output and the signature names taken from it, and the checks and
// file stamps behind a program's health and derived version.
//
// The engines keep their own message prefixes: functions that return
// errors take the engine's name, which starts every message, as in
// "command: cancelled: context canceled".
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/lazaret/lazaret/internal/scan"
)

// SafeArg makes an untrusted sample name safe as (part of) an argument:
// invalid UTF-8 and control characters become '_' (a NUL would make the
// exec fail, other control characters garble logs), and so does a leading
// '-', which would turn a name such as "--remove" into an option.
func SafeArg(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '_'
		}
		return r
	}, strings.ToValidUTF8(name, "_"))
	if strings.HasPrefix(name, "-") {
		name = "_" + name[1:]
	}
	return name
}

// Argv fills a command template: the program, template[0], as it is, and
// each argument with r's placeholders replaced inside it, in one pass, so
// that a sample name containing a placeholder stays as it is.
func Argv(template []string, r *strings.Replacer) []string {
	args := make([]string, len(template))
	args[0] = template[0]
	for i, a := range template[1:] {
		args[i+1] = r.Replace(a)
	}
	return args
}

// KillGroup sends SIGKILL to the process group pgid, which a program
// started with Setpgid leads. A group that is gone is reported as
// os.ErrProcessDone, which tells os/exec (as exec.Cmd.Cancel's result)
// that the program ended on its own. Other errors start with engine, the
// name of the engine. A pgid below 2 is refused: to kill(2) it would mean
// the caller's own group, or every process it may signal.
func KillGroup(engine string, pgid int) error {
	if pgid < 2 {
		return fmt.Errorf("%s: kill process group %d: not a child's process group", engine, pgid)
	}
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("%s: kill process group %d: %w", engine, pgid, err)
	}
	return nil
}

// errTimeout is the cause of a deadline set by WithTimeout, to tell it
// from a caller's.
var errTimeout = errors.New("proc: timeout")

// WithTimeout returns a copy of ctx that ends after timeout: the engine's
// own bound on a run. ContextError tells its expiry from the end of ctx.
func WithTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, timeout, errTimeout)
}

// ContextError reports a run stopped by its ended context: reason timeout
// when the deadline of WithTimeout passed ("timed out after" timeout) or
// the caller's did, engine_error when the context was cancelled. The
// error wraps context.DeadlineExceeded or context.Canceled, and its
// message starts with engine, the name of the engine.
func ContextError(ctx context.Context, engine string, timeout time.Duration) error {
	if errors.Is(context.Cause(ctx), errTimeout) {
		return scan.Errorf(scan.ReasonTimeout, "%s: timed out after %s: %w", engine, timeout, context.DeadlineExceeded)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return scan.Errorf(scan.ReasonTimeout, "%s: %w", engine, ctx.Err())
	}
	return scan.Errorf(scan.ReasonEngineError, "%s: cancelled: %w", engine, ctx.Err())
}

// Executable reports whether path names a file that is executable by
// someone: the error is os.Stat's, or says that it is a folder or has no
// execute bit.
func Executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", path)
	}
	return nil
}

// FileStamp writes path, the size and the modification time of the file
// or folder at path to w (a hash), or nothing when path cannot be
// stat'ed. A version derived from the stamps of a program and of the
// rules and signatures it reads changes when any of them is updated.
func FileStamp(w io.Writer, path string) {
	if fi, err := os.Stat(path); err == nil {
		fmt.Fprintf(w, "%s %d %d\n", path, fi.Size(), fi.ModTime().UnixNano())
	}
}
