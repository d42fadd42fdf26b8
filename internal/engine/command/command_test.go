package command_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/engine/command"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

// clamscanFound is clamscan's (and clamdscan's) infection line.
const clamscanFound = `^.*: (?P<signature>\S+) FOUND$`

func TestMain(m *testing.M) {
	// A secret in lazaret's environment must not reach the scanner; see
	// "environment is minimal".
	os.Setenv("LAZARET_TEST_SECRET", "hunter2")
	os.Exit(m.Run())
}

// script writes a /bin/sh script into a fresh folder and returns its path.
// Tests run it as "/bin/sh SCRIPT", not directly: executing a file that was
// just written races with other tests' forks ("text file busy").
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scan.sh")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// clamLike is a config in clamscan's style around a script.
func clamLike(sh string) command.Config {
	return command.Config{
		Name:         "test",
		Command:      []string{"/bin/sh", sh, "{path}"},
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}, OutputMatches: clamscanFound},
		Timeout:      10 * time.Second,
	}
}

func newEngine(t *testing.T, cfg command.Config) *command.Engine {
	t.Helper()
	e, err := command.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func sample(t *testing.T, data []byte, name string) scan.Sample {
	t.Helper()
	b := spool.Bytes(data)
	t.Cleanup(func() { b.Close() })
	return b.Sample(name)
}

// scanNorm scans and normalises the answer as the pipeline does.
func scanNorm(ctx context.Context, e *command.Engine, s scan.Sample) scan.Result {
	r, err := e.Scan(ctx, s)
	return scan.Normalize(e.Name(), r, err)
}

func signatures(r scan.Result) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Signature)
	}
	return out
}

func TestScanDecides(t *testing.T) {
	t.Parallel()
	regexOnly := func(c *command.Config) { c.InfectedWhen.ExitCodes = nil }
	codesOnly := func(c *command.Config) { c.InfectedWhen.OutputMatches = "" }
	for _, tc := range []struct {
		name    string
		script  string
		cfg     func(*command.Config)
		verdict scan.Verdict
		reason  scan.Reason
		sigs    []string
		detail  []string // substrings of Detail
	}{
		{name: "exit 0 is clean", script: `echo "$1: OK"; exit 0`, verdict: scan.Clean},
		{name: "exit 1 with match is infected",
			script:  `echo "$1: Test.Sig.A FOUND"; exit 1`,
			verdict: scan.Infected, sigs: []string{"Test.Sig.A"}},
		{name: "every match, stdout and stderr, once each",
			script:  `echo "a: Sig.One FOUND"; echo "b: Sig.Two FOUND" >&2; echo "c: Sig.One FOUND"; echo "noise"; exit 1`,
			verdict: scan.Infected, sigs: []string{"Sig.One", "Sig.Two"}},
		{name: "exit 1 without match is infected unknown",
			script: `echo "something odd"; exit 1`, verdict: scan.Infected, sigs: []string{"unknown"}},
		{name: "match with exit 0 is infected (yara exits 0 on a match)",
			script:  `echo "x: Yara.Rule FOUND"; exit 0`,
			verdict: scan.Infected, sigs: []string{"Yara.Rule"}},
		{name: "exit 2 is an error (clamscan's error code)",
			script:  `echo "ERROR: Can't open file or directory" >&2; exit 2`,
			verdict: scan.Error, reason: scan.ReasonEngineError,
			detail: []string{"exit code 2", "Can't open file"}},
		{name: "exit 2 with a match is still an error",
			script:  `echo "x: Sig FOUND"; exit 2`,
			verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"exit code 2", "also matched: Sig"}},
		{name: "exit 137 is an error", script: `exit 137`,
			verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"exit code 137"}},
		{name: "killed by SIGKILL (OOM) is an error", script: `echo "scanning"; kill -KILL $$; exit 0`,
			verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"killed by signal", "scanning"}},
		{name: "killed by SIGSEGV is an error", script: `kill -SEGV $$`,
			verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"signal"}},
		{name: "regex only: match with exit 0 is infected", cfg: regexOnly,
			script: `echo "x: Only.Regex FOUND"`, verdict: scan.Infected, sigs: []string{"Only.Regex"}},
		{name: "regex only: no match with exit 0 is clean", cfg: regexOnly,
			script: `echo "x: OK"`, verdict: scan.Clean},
		{name: "regex only: exit 1 is an error", cfg: regexOnly,
			script: `echo "x: Sig FOUND"; exit 1`, verdict: scan.Error, reason: scan.ReasonEngineError},
		{name: "codes only: exit 1 is infected unknown", cfg: codesOnly,
			script: `echo "x: Sig FOUND"; exit 1`, verdict: scan.Infected, sigs: []string{"unknown"}},
		{name: "codes only: exit 0 is clean whatever it prints", cfg: codesOnly,
			script: `echo "x: Sig FOUND"; exit 0`, verdict: scan.Clean},
		{name: "regex without signature group names unknown",
			cfg:    func(c *command.Config) { c.InfectedWhen.OutputMatches = `FOUND$` },
			script: `echo "x: Sig FOUND"; exit 1`, verdict: scan.Infected, sigs: []string{"unknown"}},
		{name: "extra clean exit code", cfg: func(c *command.Config) { c.CleanExitCodes = []int{0, 3} },
			script: `exit 3`, verdict: scan.Clean},
		{name: "zero is not clean when not listed", cfg: func(c *command.Config) { c.CleanExitCodes = []int{3} },
			script: `exit 0`, verdict: scan.Error, reason: scan.ReasonEngineError},
		{name: "line longer than max_output with exit 0 is an error",
			cfg:     func(c *command.Config) { c.MaxOutput = 4096 },
			script:  `head -c 100000 /dev/zero | tr '\0' a; echo; echo "x: OK"; exit 0`,
			verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"max_output"}},
		{name: "line longer than max_output does not hide later matches",
			cfg:     func(c *command.Config) { c.MaxOutput = 4096 },
			script:  `head -c 100000 /dev/zero | tr '\0' a; echo; echo "x: After.Long FOUND"; exit 1`,
			verdict: scan.Infected, sigs: []string{"After.Long"}},
		{name: "last line without newline is examined",
			script: `printf 'x: No.Newline FOUND'; exit 1`, verdict: scan.Infected, sigs: []string{"No.Newline"}},
		{name: "the command reads the sample at its path",
			script:  `if grep -q EVIL "$1"; then echo "$1: Evil.Bytes FOUND"; exit 1; fi; exit 0`,
			verdict: scan.Infected, sigs: []string{"Evil.Bytes"}},
		{name: "a clean-looking script that fails to read is an error",
			script:  `cat "$1.missing" >/dev/null || exit 2; exit 0`,
			verdict: scan.Error, reason: scan.ReasonEngineError},
		{name: "environment is minimal",
			script:  `if [ -n "$LAZARET_TEST_SECRET" ]; then exit 9; fi; [ "$LC_ALL" = C ] && [ "$EXTRA" = yes ] || exit 8; exit 0`,
			cfg:     func(c *command.Config) { c.Env = map[string]string{"EXTRA": "yes"} },
			verdict: scan.Clean},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := clamLike(script(t, tc.script))
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e := newEngine(t, cfg)
			got := scanNorm(t.Context(), e, sample(t, []byte("some EVIL bytes"), "s.bin"))
			if got.Verdict != tc.verdict || got.Reason != tc.reason {
				t.Fatalf("got %s/%q (%s), want %s/%q", got.Verdict, got.Reason, got.Detail, tc.verdict, tc.reason)
			}
			if gs := signatures(got); !slices.Equal(gs, tc.sigs) {
				t.Errorf("got signatures %q, want %q", gs, tc.sigs)
			}
			for _, d := range tc.detail {
				if !strings.Contains(got.Detail, d) {
					t.Errorf("got detail %q, want it to contain %q", got.Detail, d)
				}
			}
		})
	}
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still alive, want it killed with the command's group", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// grandchildScript starts a background sleep that holds the output pipe,
// records its pid, then runs tail.
func grandchildScript(t *testing.T, tail string) (sh, pidFile string) {
	pidFile = filepath.Join(t.TempDir(), "grandchild.pid")
	return script(t, fmt.Sprintf("sleep 100 &\necho $! > %q\n%s\n", pidFile, tail)), pidFile
}

func TestScanTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	sh, pidFile := grandchildScript(t, "echo 'x: Late.Sig FOUND'\nsleep 100\n")
	cfg := clamLike(sh)
	cfg.Timeout = 500 * time.Millisecond
	e := newEngine(t, cfg)

	start := time.Now()
	got := scanNorm(t.Context(), e, sample(t, []byte("x"), "x"))
	elapsed := time.Since(start)
	if got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
		t.Errorf("got %s/%q (%s), want error/timeout", got.Verdict, got.Reason, got.Detail)
	}
	if elapsed > cfg.Timeout+time.Second {
		t.Errorf("Scan took %s, want at most %s", elapsed, cfg.Timeout+time.Second)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestScanExitKillsLeftovers(t *testing.T) {
	t.Parallel()
	// The command exits at once, but its background child keeps the output
	// pipe open: Scan must neither wait for it nor leave it running.
	sh, pidFile := grandchildScript(t, "echo \"$1: Left.Behind FOUND\"\nexit 1\n")
	e := newEngine(t, clamLike(sh))

	start := time.Now()
	got := scanNorm(t.Context(), e, sample(t, []byte("x"), "x"))
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Scan took %s, want it to return when the command exits", elapsed)
	}
	if got.Verdict != scan.Infected || !slices.Equal(signatures(got), []string{"Left.Behind"}) {
		t.Errorf("got %s %q (%s), want infected [Left.Behind]", got.Verdict, signatures(got), got.Detail)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestScanOutputHeldOutsideGroup(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid is not installed")
	}
	// A process that left the command's group (setsid) survives the group
	// kill and keeps the output open: what it might still print is
	// unknown, so the sample cannot be clean.
	pidFile := filepath.Join(t.TempDir(), "escaped.pid")
	// The script waits until the process has left the group, or the group
	// kill could catch it before it does.
	e := newEngine(t, clamLike(script(t, fmt.Sprintf(`setsid sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 30' sh %q &
while [ ! -s %q ]; do sleep 0.01; done
exit 0
`, pidFile, pidFile))))
	start := time.Now()
	got := scanNorm(t.Context(), e, sample(t, []byte("x"), "x"))
	t.Cleanup(func() { syscall.Kill(readPID(t, pidFile), syscall.SIGKILL) })
	if got.Verdict != scan.Error || !strings.Contains(got.Detail, "output still open") {
		t.Errorf("got %s (%s), want error: output still open", got.Verdict, got.Detail)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Scan took %s, want it bounded by the drain timeout", elapsed)
	}
}

func TestScanContextCancelled(t *testing.T) {
	t.Parallel()
	t.Run("during the scan", func(t *testing.T) {
		t.Parallel()
		sh, pidFile := grandchildScript(t, "exec sleep 100\n")
		e := newEngine(t, clamLike(sh))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		got := scanNorm(ctx, e, sample(t, []byte("x"), "x"))
		if got.Verdict == scan.Clean || got.Verdict == scan.Infected {
			t.Errorf("got %s, want not clean", got.Verdict)
		}
		if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError {
			t.Errorf("got %s/%q, want error/engine_error", got.Verdict, got.Reason)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Scan took %s after cancellation", elapsed)
		}
		waitGone(t, readPID(t, pidFile))
	})
	t.Run("caller's deadline", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, clamLike(script(t, "sleep 100")))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		got := scanNorm(ctx, e, sample(t, []byte("x"), "x"))
		if got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
			t.Errorf("got %s/%q, want error/timeout", got.Verdict, got.Reason)
		}
	})
	t.Run("before the scan", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, clamLike(script(t, "exit 0")))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got := scanNorm(ctx, e, sample(t, []byte("x"), "x"))
		if got.Verdict != scan.Error {
			t.Errorf("got %s/%q, want error", got.Verdict, got.Reason)
		}
	})
}

// TestScanHugeOutput is not parallel: it measures allocation, which other
// tests running at the same time would inflate.
func TestScanHugeOutput(t *testing.T) {
	const size = 50_000_000
	for _, tc := range []struct {
		name    string
		tail    string
		verdict scan.Verdict
		sigs    []string
	}{
		{"clean", "exit 0", scan.Clean, nil},
		// A match after 50 MB shows the whole output was examined, not
		// just the first max_output bytes.
		{"match at the end", `echo "x: At.The.End FOUND"; exit 1`, scan.Infected, []string{"At.The.End"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, clamLike(script(t, fmt.Sprintf("yes | head -c %d\n%s\n", size, tc.tail))))
			s := sample(t, []byte("x"), "x")
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got := scanNorm(t.Context(), e, s)
			runtime.ReadMemStats(&after)
			if got.Verdict != tc.verdict || !slices.Equal(signatures(got), tc.sigs) {
				t.Errorf("got %s %q (%s), want %s %q", got.Verdict, signatures(got), got.Detail, tc.verdict, tc.sigs)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/10 {
				t.Errorf("allocated %d bytes for %d bytes of output, want it bounded", alloc, size)
			}
		})
	}
}

func TestScanStartFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  command.Config
	}{
		{"missing binary", command.Config{Name: "x", Command: []string{"/nonexistent/scanner", "{path}"},
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}}},
		{"missing binary in PATH", command.Config{Name: "x", Command: []string{"lazaret-no-such-scanner", "{path}"},
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}}},
		{"missing working folder", command.Config{Name: "x", Command: []string{"/bin/sh", "-c", "exit 0", "sh", "{path}"},
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}, Dir: "/nonexistent/dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, tc.cfg)
			got := scanNorm(t.Context(), e, sample(t, []byte("x"), "x"))
			if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError {
				t.Errorf("got %s/%q, want error/engine_error", got.Verdict, got.Reason)
			}
			if !strings.Contains(got.Detail, "command: start") {
				t.Errorf("got detail %q, want it to say the start failed", got.Detail)
			}
		})
	}
}

// pathBody is a scan.Body at a path of the test's choosing.
type pathBody struct{ path string }

func (b pathBody) Open() (io.ReadCloser, error) { return os.Open(b.path) }
func (b pathBody) Path() (string, error)        { return b.path, nil }

type failingBody struct{}

func (failingBody) Open() (io.ReadCloser, error) { return nil, errors.New("gone") }
func (failingBody) Path() (string, error)        { return "", errors.New("disk full") }

func TestScanArgv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, `it's a "sample" $(touch pwned) ;|&.bin`)
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	argsFile := filepath.Join(dir, "args")
	// Each argument on its own NUL-terminated record, exactly as received.
	sh := script(t, fmt.Sprintf(`for a in "$@"; do printf '%%s\0' "$a"; done > %q; exit 0`, argsFile))
	e := newEngine(t, command.Config{
		Name:         "argv",
		Command:      []string{"/bin/sh", sh, "--file={path}", "{name}", "{path}", "literal {x}"},
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}},
	})
	for _, tc := range []struct {
		name, want string
	}{
		{`a b 'c' "d" $(id) {path}.txt`, `a b 'c' "d" $(id) {path}.txt`},
		{"--remove", "_-remove"},
		{"new\nline\x00nul", "new_line_nul"},
		{"", ""},
	} {
		got := scanNorm(t.Context(), e, scan.Sample{Name: tc.name, Body: pathBody{path}})
		if got.Verdict != scan.Clean {
			t.Fatalf("name %q: got %s (%s), want clean", tc.name, got.Verdict, got.Detail)
		}
		b, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		want := []string{"--file=" + path, tc.want, path, "literal {x}"}
		if !slices.Equal(args, want) {
			t.Errorf("name %q: got argv %q, want %q", tc.name, args, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a shell ran the path")
	}
	t.Run("path error", func(t *testing.T) {
		got := scanNorm(t.Context(), e, scan.Sample{Name: "x", Body: failingBody{}})
		if got.Verdict != scan.Error || got.Reason != scan.ReasonIO {
			t.Errorf("got %s/%q, want error/io_error", got.Verdict, got.Reason)
		}
	})
	t.Run("no body", func(t *testing.T) {
		got := scanNorm(t.Context(), e, scan.Sample{Name: "x"})
		if got.Verdict != scan.Error {
			t.Errorf("got %s, want error", got.Verdict)
		}
	})
}

func TestScanRelativeDir(t *testing.T) {
	t.Parallel()
	// A relative program runs from Dir, and {path} stays valid there.
	dir := t.TempDir()
	sh := script(t, `grep -q EVIL "$1" && { echo "x: In.Dir FOUND"; exit 1; }; exit 0`)
	if err := os.WriteFile(filepath.Join(dir, "scan.sh"), mustRead(t, sh), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, command.Config{
		Name: "dir", Command: []string{"/bin/sh", "scan.sh", "{path}"}, Dir: dir,
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}, OutputMatches: clamscanFound},
	})
	got := scanNorm(t.Context(), e, sample(t, []byte("EVIL"), "x"))
	if got.Verdict != scan.Infected || !slices.Equal(signatures(got), []string{"In.Dir"}) {
		t.Errorf("got %s %q (%s), want infected [In.Dir]", got.Verdict, signatures(got), got.Detail)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScanStdin(t *testing.T) {
	t.Parallel()
	e := newEngine(t, command.Config{
		Name:         "stdin",
		Command:      []string{"/bin/sh", script(t, `grep -q EVIL && { echo "stdin: Via.Stdin FOUND"; exit 1; }; exit 0`)},
		Stdin:        true,
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}, OutputMatches: clamscanFound},
	})
	for _, tc := range []struct {
		data    string
		verdict scan.Verdict
	}{{"some EVIL here", scan.Infected}, {"nothing", scan.Clean}} {
		if got := scanNorm(t.Context(), e, sample(t, []byte(tc.data), "x")); got.Verdict != tc.verdict {
			t.Errorf("%q: got %s (%s), want %s", tc.data, got.Verdict, got.Detail, tc.verdict)
		}
	}
}

func TestScanConcurrent(t *testing.T) {
	t.Parallel()
	e := newEngine(t, clamLike(script(t, `if grep -q EVIL "$1"; then echo "$1: Sig FOUND"; exit 1; fi`)))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			data, want := []byte("fine"), scan.Clean
			if i%2 == 0 {
				data, want = []byte("EVIL"), scan.Infected
			}
			if got := scanNorm(t.Context(), e, sample(t, data, "x")); got.Verdict != want {
				t.Errorf("scan %d: got %s (%s), want %s", i, got.Verdict, got.Detail, want)
			}
		})
	}
	wg.Wait()
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	valid := func() command.Config {
		return command.Config{Name: "v", Command: []string{"scanner", "{path}"},
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*command.Config)
		field string // "" when valid
	}{
		{"valid", func(*command.Config) {}, ""},
		{"stdin without {path}", func(c *command.Config) { c.Command = []string{"scanner", "-"}; c.Stdin = true }, ""},
		{"no name", func(c *command.Config) { c.Name = "" }, "name:"},
		{"empty command", func(c *command.Config) { c.Command = nil }, "command:"},
		{"empty program", func(c *command.Config) { c.Command = []string{"", "{path}"} }, "command:"},
		{"no {path}", func(c *command.Config) { c.Command = []string{"scanner", "{name}"} }, "command: no {path}"},
		{"{path} as the program", func(c *command.Config) { c.Command = []string{"{path}", "{path}"} }, "command:"},
		{"no infected_when", func(c *command.Config) { c.InfectedWhen = command.InfectedWhen{} }, "infected_when:"},
		{"bad regexp", func(c *command.Config) { c.InfectedWhen.OutputMatches = "(" }, "infected_when.output_matches:"},
		{"regexp matching nothing at all", func(c *command.Config) { c.InfectedWhen.OutputMatches = "x*" }, "infected_when.output_matches:"},
		{"overlapping codes", func(c *command.Config) { c.CleanExitCodes = []int{0, 1} }, "clean_exit_codes:"},
		{"exit code out of range", func(c *command.Config) { c.InfectedWhen.ExitCodes = []int{256} }, "infected_when.exit_codes:"},
		{"small max_output", func(c *command.Config) { c.MaxOutput = 10 }, "max_output:"},
		{"version and version_command", func(c *command.Config) {
			c.Version = "1"
			c.VersionCommand = []string{"scanner", "--version"}
		}, "version_command:"},
		{"placeholder in version_command", func(c *command.Config) { c.VersionCommand = []string{"scanner", "{path}"} }, "version_command:"},
		{"bad env name", func(c *command.Config) { c.Env = map[string]string{"A=B": "c"} }, "env:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.edit(&cfg)
			_, err := command.New(cfg, nil)
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.field != "" && err == nil:
				t.Errorf("got no error, want one naming %q", tc.field)
			case tc.field != "" && !strings.Contains(err.Error(), tc.field):
				t.Errorf("got %v, want it to name %q", err, tc.field)
			}
		})
	}
}

func TestEngineBasics(t *testing.T) {
	t.Parallel()
	e := newEngine(t, command.Config{Name: "basic", Command: []string{"/bin/sh", "{path}"},
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
	if e.Name() != "basic" || e.Type() != "command" {
		t.Errorf("got %q/%q, want basic/command", e.Name(), e.Type())
	}
	if err := e.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	missing := newEngine(t, command.Config{Name: "m", Command: []string{"lazaret-no-such-scanner", "{path}"},
		InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
	if err := missing.Ping(t.Context()); err == nil {
		t.Error("Ping of a missing program: got nil, want an error")
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	t.Run("fixed", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, command.Config{Name: "v", Command: []string{"x", "{path}"}, Version: "yara 4.5/rules-7",
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
		if v, err := e.Version(t.Context()); err != nil || v != "yara 4.5/rules-7" {
			t.Errorf("got %q, %v, want the fixed version", v, err)
		}
	})
	t.Run("command, cached", func(t *testing.T) {
		t.Parallel()
		counter := filepath.Join(t.TempDir(), "runs")
		sh := script(t, fmt.Sprintf("echo run >> %q\nprintf '  Scanner 1.2/345  \\nsecond line\\n'\n", counter))
		e := newEngine(t, command.Config{Name: "v", Command: []string{"x", "{path}"},
			VersionCommand: []string{"/bin/sh", sh}, InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if v, err := e.Version(t.Context()); err != nil || v != "Scanner 1.2/345" {
					t.Errorf("got %q, %v, want %q", v, err, "Scanner 1.2/345")
				}
			})
		}
		wg.Wait()
		if runs := strings.Count(string(mustRead(t, counter)), "run"); runs != 1 {
			t.Errorf("version command ran %d times, want 1 (cached)", runs)
		}
	})
	t.Run("command expires", func(t *testing.T) {
		t.Parallel()
		counter := filepath.Join(t.TempDir(), "runs")
		sh := script(t, fmt.Sprintf("echo run >> %q\nwc -l < %q\n", counter, counter))
		e := newEngine(t, command.Config{Name: "v", Command: []string{"x", "{path}"}, VersionTTL: time.Nanosecond,
			VersionCommand: []string{"/bin/sh", sh}, InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
		v1, err1 := e.Version(t.Context())
		v2, err2 := e.Version(t.Context())
		if err1 != nil || err2 != nil || v1 == v2 {
			t.Errorf("got %q, %v then %q, %v, want two different versions", v1, err1, v2, err2)
		}
	})
	for _, tc := range []struct{ name, script string }{
		{"command fails", "echo 'ERROR: no database'; exit 2"},
		{"command prints nothing", "exit 0"},
		{"command killed", "kill -KILL $$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, command.Config{Name: "v", Command: []string{"x", "{path}"},
				VersionCommand: []string{"/bin/sh", script(t, tc.script)}, InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
			if v, err := e.Version(t.Context()); err == nil {
				t.Errorf("got %q, nil, want an error", v)
			}
		})
	}
	t.Run("derived follows the rules file", func(t *testing.T) {
		t.Parallel()
		rules := filepath.Join(t.TempDir(), "rules.yar")
		if err := os.WriteFile(rules, []byte("rule a { condition: false }"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, command.Config{Name: "v", Command: []string{"/bin/sh", rules, "{path}"},
			InfectedWhen: command.InfectedWhen{ExitCodes: []int{1}}})
		v1, _ := e.Version(t.Context())
		if again, _ := e.Version(t.Context()); again != v1 || !strings.HasPrefix(v1, "command/") {
			t.Fatalf("got %q then %q, want one stable command/... version", v1, again)
		}
		if err := os.WriteFile(rules, []byte("rule a { condition: true }"), 0o644); err != nil {
			t.Fatal(err)
		}
		if v2, _ := e.Version(t.Context()); v2 == v1 {
			t.Errorf("got %q after the rules changed, want a new version", v2)
		}
	})
}

// TestClamscan runs the real clamscan with the project's test signatures.
func TestClamscan(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("clamscan")
	if err != nil {
		testenv.Require(t, "clamscan")
	}
	sigDir := filepath.Join(t.TempDir(), "sigs")
	if err := testenv.WriteSignatures(sigDir); err != nil {
		t.Fatal(err)
	}
	cfg := command.Config{
		Name:           "clamscan",
		Command:        []string{bin, "--no-summary", "-d", sigDir, "{path}"},
		InfectedWhen:   command.InfectedWhen{ExitCodes: []int{1}, OutputMatches: clamscanFound},
		VersionCommand: []string{bin, "-d", sigDir, "--version"},
		Timeout:        time.Minute,
	}
	e := newEngine(t, cfg)
	if v, err := e.Version(t.Context()); err != nil || !strings.HasPrefix(v, "ClamAV ") {
		t.Errorf("got version %q, %v, want ClamAV ...", v, err)
	}
	broken := cfg
	broken.Command = []string{bin, "--no-summary", "-d", filepath.Join(sigDir, "missing"), "{path}"}
	for _, tc := range []struct {
		name    string
		e       *command.Engine
		data    []byte
		verdict scan.Verdict
		sigs    []string
		detail  string
	}{
		{"eicar", e, testenv.EICAR, scan.Infected, []string{testenv.Unofficial(testenv.EICARSignature)}, ""},
		{"ndb", e, testenv.NDBSample(), scan.Infected, []string{testenv.Unofficial(testenv.NDBSignature)}, ""},
		{"random data", e, testenv.Deterministic("clamscan-clean", 10000), scan.Clean, nil, ""},
		// No database: clamscan exits 2, which must never read as clean.
		{"exit 2", newEngine(t, broken), testenv.EICAR, scan.Error, nil, "exit code 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := scanNorm(t.Context(), tc.e, sample(t, tc.data, "sample with spaces.bin"))
			if got.Verdict != tc.verdict || !slices.Equal(signatures(got), tc.sigs) {
				t.Errorf("got %s %q (%s), want %s %q", got.Verdict, signatures(got), got.Detail, tc.verdict, tc.sigs)
			}
			if !strings.Contains(got.Detail, tc.detail) {
				t.Errorf("got detail %q, want it to contain %q", got.Detail, tc.detail)
			}
		})
	}
}
