package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/ctxio"
	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
)

const (
	// drainTimeout bounds how long output is read once the run's
	// process is gone. With bwrap everything is gone by then; without,
	// only a process that left the group can keep a pipe open.
	drainTimeout = 2 * time.Second
	// goneTimeout bounds the wait for a killed bwrap sandbox's PID
	// namespace to end (its init dies with bwrap, and ends every process
	// in the namespace before it is gone itself).
	goneTimeout = 5 * time.Second
	// cpuGrace is how far the hard CPU limit lies past the soft one: the
	// soft limit sends SIGXCPU, which names the cause; the hard one kills
	// an analyzer that ignores it.
	cpuGrace = 5
)

// workdir is one run's private folder on the host: random name, 0700 (0711
// when another user must reach into it), removed after the run.
type workdir struct {
	dir    string
	sample string // the sample file to show the analyzer
	report string // the report file, created empty
	tmp    string // the analyzer's scratch folder (isolation none)
}

// prepare makes the run's folder: the report file and, when the analyzer
// runs as another user, a private copy of the sample it may read (the
// spooled sample is lazaret's, mode 0600).
func (e *Engine) prepare(ctx context.Context, s scan.Sample) (_ *workdir, err error) {
	dir, err := os.MkdirTemp("", "lazaret-sandbox-*")
	if err != nil {
		return nil, scan.Errorf(scan.ReasonEngineError, "sandbox: work folder: %w", err)
	}
	w := &workdir{dir: dir, report: filepath.Join(dir, "report")}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if e.drop {
		// The analyzer's user (and bwrap, which runs as it) may pass
		// through the folder to its files, not list it or rename what
		// is in it. The folders above must let it pass too: New's probe
		// finds out.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, scan.Errorf(scan.ReasonEngineError, "sandbox: work folder: %w", err)
		}
	}
	owned := func(p string, mode os.FileMode) error {
		if e.drop {
			if err := os.Chown(p, int(e.uid), int(e.gid)); err != nil {
				return err
			}
		}
		return os.Chmod(p, mode)
	}
	if e.drop {
		w.sample = filepath.Join(dir, "sample")
		if err := e.copySample(ctx, s, w.sample); err != nil {
			return nil, err
		}
		if err := owned(w.sample, 0o400); err != nil {
			return nil, scan.Errorf(scan.ReasonEngineError, "sandbox: sample copy: %w", err)
		}
	} else {
		p, err := s.Body.Path()
		if err == nil {
			p, err = filepath.Abs(p)
		}
		if err != nil {
			return nil, scan.Errorf(scan.ReadReason(err), "sandbox: sample file: %w", err)
		}
		w.sample = p
	}
	f, err := os.OpenFile(w.report, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = owned(w.report, 0o600)
	}
	if err != nil {
		return nil, scan.Errorf(scan.ReasonEngineError, "sandbox: report file: %w", err)
	}
	if e.cfg.Isolation == IsolationNone {
		w.tmp = filepath.Join(dir, "tmp")
		err := os.Mkdir(w.tmp, 0o700)
		if err == nil {
			err = owned(w.tmp, 0o700)
		}
		if err != nil {
			return nil, scan.Errorf(scan.ReasonEngineError, "sandbox: scratch folder: %w", err)
		}
	}
	return w, nil
}

func (e *Engine) copySample(ctx context.Context, s scan.Sample, dst string) error {
	r, err := s.Body.Open()
	if err != nil {
		return scan.Errorf(scan.ReadReason(err), "sandbox: open sample: %w", err)
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return scan.Errorf(scan.ReasonEngineError, "sandbox: sample copy: %w", err)
	}
	_, err = io.Copy(f, ctxio.Reader(ctx, r))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return proc.ContextError(ctx, Type, e.cfg.Timeout)
		}
		return scan.Errorf(scan.ReadReason(err), "sandbox: sample copy: %w", err)
	}
	return nil
}

func (w *workdir) remove() error { return os.RemoveAll(w.dir) }

// runSpec is one run of the analyzer.
type runSpec struct {
	argv   []string // the analyzer's argv, placeholders filled
	env    []string // its whole environment
	sample string   // the host file shown as the sample
	report string   // the host report file
	dir    string   // its working folder (isolation none)
}

// spec fills the command template and the environment for a run in w.
func (e *Engine) spec(w *workdir, name string) runSpec {
	sample, report, tmp := w.sample, w.report, w.tmp
	if e.cfg.Isolation == IsolationBwrap {
		sample, report, tmp = e.sampleInside(), reportInside, "/tmp"
	}
	safe := proc.SafeArg(name)
	argv := proc.Argv(e.cfg.Command, strings.NewReplacer(PathPlaceholder, sample, NamePlaceholder, safe, ReportPlaceholder, report))
	// Config.Env may override HOME and TMPDIR (os/exec and bwrap keep
	// the last of duplicates), not the engine's own variables.
	env := []string{"PATH=" + sandboxPath, "LC_ALL=C", "HOME=" + tmp, "TMPDIR=" + tmp}
	env = append(env, e.env...)
	env = append(env, EnvSample+"="+sample, EnvSampleName+"="+safe, EnvReport+"="+report)
	return runSpec{argv: argv, env: env, sample: w.sample, report: w.report, dir: tmp}
}

// outcome is how one run ended.
type outcome struct {
	// started: the analyzer itself ran. Otherwise prlimit or bwrap
	// failed before it (and their exit codes say nothing about the
	// sample).
	started bool
	// code is the analyzer's exit code; bwrap reports death by signal n
	// as 128+n.
	code     int
	signaled bool // killed by a signal (isolation none)
	signal   syscall.Signal
	// wrapper is how prlimit (and bwrap) ended, for the detail of a run
	// whose analyzer did not start.
	wrapper string
	stdout  *capture
	stderr  *capture
}

// limitArgs is prlimit's part of the argv: it sets the limits on itself
// and executes the rest, so they hold from the first instruction of the
// sandbox on, for every process in it.
func (e *Engine) limitArgs() []string {
	l := e.cfg.Limits
	cpu := int64(math.Ceil(l.CPUTime.Seconds()))
	return []string{e.prlimit,
		"--as=" + strconv.FormatInt(l.Memory, 10),
		"--cpu=" + strconv.FormatInt(cpu, 10) + ":" + strconv.FormatInt(cpu+cpuGrace, 10),
		"--fsize=" + strconv.FormatInt(l.FileSize, 10),
		"--nproc=" + strconv.Itoa(l.Processes),
		"--core=0",
		"--",
	}
}

// status is what bwrap's --json-status-fd told, and the start wrapper's
// mark. Each reader sets fields of its own, and the fields are read once
// both readers are done.
type status struct {
	started    bool
	exited     bool
	exitCode   int
	childPID   int    // the sandbox's init, in the host's PID namespace
	childStart uint64 // its start time, against PID reuse
}

// readMark consumes the start wrapper's pipe until it ends.
func (st *status) readMark(r io.Reader) {
	b, _ := io.ReadAll(io.LimitReader(r, 16))
	st.started = bytes.Contains(b, []byte("x"))
	io.Copy(io.Discard, r)
}

// readJSON consumes bwrap's status pipe until it ends.
func (st *status) readJSON(r io.Reader) {
	dec := json.NewDecoder(io.LimitReader(r, 64<<10))
	for {
		var m struct {
			ChildPID *int `json:"child-pid"`
			ExitCode *int `json:"exit-code"`
		}
		if err := dec.Decode(&m); err != nil {
			io.Copy(io.Discard, r)
			return
		}
		if m.ChildPID != nil {
			st.childPID = *m.ChildPID
			_, st.childStart, _ = procStat(st.childPID)
		}
		if m.ExitCode != nil {
			st.exited, st.exitCode = true, *m.ExitCode
		}
	}
}

// execute runs spec under the limits and the isolation, waits for it,
// makes sure nothing of it is left running, and reports how it ended.
// Timeouts, cancellations and start failures are returned as errors with
// a scan.Reason; an ended run is never an error here, deciding is the
// caller's.
func (e *Engine) execute(ctx context.Context, rs runSpec) (outcome, error) {
	ctx, cancel := proc.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	bwrap := e.cfg.Isolation == IsolationBwrap

	// Pipes, not buffers: os/exec hands an *os.File to the child as it
	// is, so Wait returns when the run's process exits, not when the
	// last holder of a pipe does.
	var pipes []*os.File
	defer func() {
		for _, p := range pipes {
			p.Close()
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			pipes = append(pipes, r, w)
		}
		return r, w, err
	}
	statusR, statusW, err1 := pipe()
	markR, markW, err2 := pipe()
	outR, outW, err3 := pipe()
	errR, errW, err4 := pipe()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return outcome{}, scan.Errorf(scan.ReasonEngineError, "sandbox: pipe: %w", err)
	}

	// Children's fds: 3 is bwrap's status (bwrap keeps it from the
	// sandbox), 4 the start mark.
	argv := e.limitArgs()
	if bwrap {
		argv = append(argv, e.bwrap)
		argv = append(argv, e.bwrapArgs(rs.sample, rs.report, rs.env)...)
	}
	argv = append(argv, startWrapper(4)...)
	argv = append(argv, rs.argv...)

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = outW, errW
	if bwrap {
		cmd.ExtraFiles = []*os.File{statusW, markW}
		cmd.Env, cmd.Dir = []string{"PATH=" + sandboxPath}, "/"
	} else {
		// fd 3 closed in the child: nothing reports there.
		cmd.ExtraFiles = []*os.File{nil, markW}
		cmd.Env, cmd.Dir = rs.env, rs.dir
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if e.drop {
		attr.Credential = &syscall.Credential{Uid: e.uid, Gid: e.gid, Groups: []uint32{}}
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return proc.KillGroup(Type, cmd.Process.Pid) }

	err := cmd.Start()
	// The child has its own copies; ours would keep the pipes open.
	for _, w := range []*os.File{statusW, markW, outW, errW} {
		w.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, proc.ContextError(ctx, Type, e.cfg.Timeout)
		}
		return outcome{}, scan.Errorf(scan.ReasonEngineError, "sandbox: start: %w", err)
	}

	out := outcome{stdout: newCapture(), stderr: newCapture()}
	st := &status{}
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); st.readJSON(statusR) }()
	go func() { defer wg.Done(); st.readMark(markR) }()
	go func() { defer wg.Done(); proc.Copy(out.stdout, outR) }()
	go func() { defer wg.Done(); proc.Copy(out.stderr, errR) }()

	werr := cmd.Wait()
	// Whatever is left in the run's process group dies with it. With
	// bwrap that is bwrap itself; the sandbox's init dies with it
	// (--die-with-parent), and every process in the sandbox with the
	// init.
	_ = proc.KillGroup(Type, cmd.Process.Pid)

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	proc.Drain(drained, drainTimeout, statusR, markR, outR, errR)
	if bwrap && st.childPID > 0 && !waitGone(st.childPID, st.childStart, goneTimeout) {
		e.logger.Error("sandbox still running after its bwrap was killed", "pid", st.childPID)
		return outcome{}, scan.Errorf(scan.ReasonEngineError, "sandbox: the sandbox (pid %d) did not end after its bwrap was killed", st.childPID)
	}

	// Wait reports the exit status of a run the context killed, not the
	// context's error, so ask the context. A run that ended on its own
	// just as the context did is reported as stopped too: an error where
	// a verdict might have been, never the other way round.
	if ctx.Err() != nil {
		return outcome{}, proc.ContextError(ctx, Type, e.cfg.Timeout)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return outcome{}, scan.Errorf(scan.ReasonEngineError, "sandbox: wait: %w", werr)
	}
	out.wrapper = "exit code " + strconv.Itoa(ws.ExitStatus())
	if werr != nil {
		out.wrapper = werr.Error()
	}
	out.started = st.started
	if bwrap {
		// bwrap's exit code may be its own; the one it reports as the
		// analyzer's is not.
		out.started = out.started && st.exited
		out.code = st.exitCode
		return out, nil
	}
	if ws.Signaled() {
		out.code, out.signaled, out.signal = -1, true, ws.Signal()
		return out, nil
	}
	out.code = ws.ExitStatus()
	return out, nil
}

// procStat reads a process's state and start time (in clock ticks since
// boot, which tells it from a later process that got the same PID) from
// /proc.
func procStat(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The fields after the parenthesised command name: state is the
	// first (field 3), the start time field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil || len(f[0]) != 1 {
		return 0, 0, false
	}
	return f[0][0], start, true
}

// waitGone waits until process pid (started at start) has exited, and
// reports whether it did in time. A zombie has exited: the init of a PID
// namespace becomes one only after every other process in it is gone.
func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		state, s, ok := procStat(pid)
		if !ok || state == 'Z' || (start != 0 && s != start) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signalHint names the limit a signal most likely comes from.
func signalHint(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGXCPU:
		return "limits.cpu_time"
	case syscall.SIGXFSZ:
		return "limits.file_size"
	case syscall.SIGKILL:
		return "out of memory, or limits.cpu_time's hard limit"
	case syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGBUS:
		return "a crash; limits.memory?"
	}
	return ""
}

// describeExit says how a run that did not exit 0 or 1 ended.
func describeExit(out outcome, bwrap bool) string {
	sig, signaled := out.signal, out.signaled
	if bwrap && out.code > 128 && out.code < 128+65 {
		// bwrap passes death by signal n on as 128+n, as a shell
		// does; an analyzer that exits with such a code on its own is
		// an error all the same.
		sig, signaled = syscall.Signal(out.code-128), true
	}
	s := "exit code " + strconv.Itoa(out.code)
	if signaled {
		s = fmt.Sprintf("killed by signal %d (%v)", int(sig), sig)
		if bwrap {
			s = fmt.Sprintf("exit code %d: killed by signal %d (%v)?", out.code, int(sig), sig)
		}
		if h := signalHint(sig); h != "" {
			s += " — " + h
		}
	}
	return s
}

// tails quotes the end of the run's output for an error's detail.
func tails(out outcome) string {
	var parts []string
	if t := out.stderr.end.String(); t != "" {
		parts = append(parts, fmt.Sprintf("stderr %q", t))
	}
	if t := out.stdout.end.String(); t != "" {
		parts = append(parts, fmt.Sprintf("stdout %q", t))
	}
	if len(parts) == 0 {
		return "no output"
	}
	return strings.Join(parts, "; ")
}

// Scan runs the analyzer on the sample and decides its verdict by the
// rules in the package documentation. Failures are returned as errors
// carrying a scan.Reason.
func (e *Engine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	if s.Body == nil {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "sandbox: sample %q has no body", s.Name)
	}
	if e.cfg.MaxSize > 0 && s.Size > e.cfg.MaxSize {
		return scan.Result{}, scan.Skipf(scan.ReasonTooLarge, "sandbox: sample is %d bytes, over the engine's max_size %d", s.Size, e.cfg.MaxSize)
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return scan.Result{}, proc.ContextError(ctx, Type, e.cfg.Timeout)
	}
	defer func() { <-e.sem }()

	start := time.Now()
	w, err := e.prepare(ctx, s)
	if err != nil {
		return scan.Result{}, err
	}
	defer func() {
		if err := w.remove(); err != nil {
			e.logger.WarnContext(ctx, "work folder not removed", "dir", w.dir, "error", err)
		}
	}()
	out, err := e.execute(ctx, e.spec(w, s.Name))
	if err != nil {
		return scan.Result{}, err
	}
	res, err := e.decide(ctx, out, w)
	e.logger.DebugContext(ctx, "analyzer done", "sha256", s.SHA256, "started", out.started, "exit_code", out.code,
		"verdict", res.Verdict, "report", res.Report != nil, "error", err, "duration", time.Since(start))
	return res, err
}

// decide turns a finished run into a verdict; see the package
// documentation.
func (e *Engine) decide(ctx context.Context, out outcome, w *workdir) (scan.Result, error) {
	bwrap := e.cfg.Isolation == IsolationBwrap
	if !out.started {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
			"sandbox: the analyzer did not run to its end (the %s set-up ended with %s); %s", e.cfg.Isolation, out.wrapper, tails(out))
	}
	if out.signaled || (out.code != 0 && out.code != 1) {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError,
			"sandbox: %s, neither 0 (clean) nor 1 (infected); %s", describeExit(out, bwrap), tails(out))
	}
	infected := out.code == 1
	report, doc, rerr := e.keepReport(ctx, w.report, infected)
	var findings []scan.Finding
	if infected {
		findings = e.findings(doc, out.stdout)
	}
	if rerr != nil {
		if infected {
			// What the analyzer found stands; the job notes the error.
			return scan.Result{Verdict: scan.Infected, Findings: findings}, rerr
		}
		return scan.Result{}, rerr
	}
	if infected {
		return scan.Result{Verdict: scan.Infected, Findings: findings, Report: report}, nil
	}
	return scan.Result{Verdict: scan.Clean, Report: report}, nil
}

// findings names an infected sample's findings: from the JSON report's
// signature field, else (none there, or only blank ones) the first line
// of standard output, else
// "unknown", as scan.Normalize names an unnamed infection.
func (e *Engine) findings(doc map[string]any, stdout *capture) []scan.Finding {
	var names []string
	if f := e.cfg.Report.SignatureField; f != "" && doc != nil {
		switch v := doc[f].(type) {
		case string:
			names = append(names, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					names = append(names, s)
				}
			}
		}
	}
	var sigs []string
	for _, n := range names {
		sigs = proc.AppendSignature(sigs, n)
	}
	if len(sigs) == 0 {
		// No field, or only blank names in it.
		sigs = proc.AppendSignature(sigs, stdout.firstLine())
	}
	if len(sigs) == 0 {
		return []scan.Finding{{Signature: "unknown"}}
	}
	fs := make([]scan.Finding, len(sigs))
	for i, n := range sigs {
		fs[i] = scan.Finding{Signature: n}
	}
	return fs
}
