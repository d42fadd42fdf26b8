package command

import (
	"context"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
)

// drainTimeout bounds how long output is read once the command's process
// group is gone. Only a process that left the group (setsid) can keep the
// pipe open that long.
const drainTimeout = time.Second

// status is how a command ended.
type status struct {
	code     int            // exit code; -1 when signaled
	signaled bool           // killed by a signal
	signal   syscall.Signal // the signal, when signaled
	drained  bool           // all output was read to its end
}

// run starts argv in its own process group with stdout and stderr on one
// pipe read into out, waits for it, kills what is left of the group, and
// reports how it ended. Timeouts, cancellations and start failures are
// returned as errors with a scan.Reason; an ended command is never an
// error here, deciding is the caller's.
func (e *Engine) run(ctx context.Context, argv []string, stdin *os.File, out io.Writer, timeout time.Duration) (status, error) {
	ctx, cancel := proc.WithTimeout(ctx, timeout)
	defer cancel()

	// One pipe for both streams keeps their lines in order and in one
	// place. It is an *os.File, so os/exec hands it to the child instead
	// of copying through goroutines that Wait would wait for: Wait then
	// returns when the command exits even if a grandchild still holds
	// the pipe, and the group can be killed right away.
	r, w, err := os.Pipe()
	if err != nil {
		return status{}, scan.Errorf(scan.ReasonEngineError, "command: pipe: %w", err)
	}
	defer r.Close()

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = e.cfg.Dir
	cmd.Env = e.env
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return proc.KillGroup(Type, cmd.Process.Pid) }

	err = cmd.Start()
	// The child has its own copy; ours would keep the pipe open forever.
	w.Close()
	if err != nil {
		if ctx.Err() != nil {
			return status{}, proc.ContextError(ctx, Type, timeout)
		}
		return status{}, scan.Errorf(scan.ReasonEngineError, "command: start: %w", err)
	}

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		proc.Copy(out, r)
	}()

	werr := cmd.Wait()
	// Whatever the command left behind in its group (a background job of
	// a script) dies with it. The group id cannot have been reused: it
	// stays taken while any member lives, and if none does there is
	// nothing to kill.
	_ = proc.KillGroup(Type, cmd.Process.Pid)

	st := status{drained: proc.Drain(copied, drainTimeout, r)}

	// Wait reports the exit status of a command the context killed, not
	// the context's error, so ask the context. A command that ended on
	// its own just as the context did is reported as stopped too: an
	// error where a verdict might have been, never the other way round.
	if ctx.Err() != nil {
		return status{}, proc.ContextError(ctx, Type, timeout)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return status{}, scan.Errorf(scan.ReasonEngineError, "command: wait: %w", werr)
	}
	if ws.Signaled() {
		st.code, st.signaled, st.signal = -1, true, ws.Signal()
		return st, nil
	}
	st.code = ws.ExitStatus()
	return st, nil
}
