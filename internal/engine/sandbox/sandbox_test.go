package sandbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/engine/sandbox"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

func TestMain(m *testing.M) {
	// A secret in lazaret's environment must not reach the analyzer;
	// see TestEnvironment.
	os.Setenv("LAZARET_TEST_SECRET", "hunter2")
	os.Exit(m.Run())
}

// requireBwrap skips the test (fails it under CI) without a working
// bubblewrap.
func requireBwrap(t *testing.T) {
	t.Helper()
	bwrap, err := exec.LookPath("bwrap")
	if err == nil {
		err = exec.Command(bwrap, "--unshare-all", "--ro-bind", "/", "/", "true").Run()
	}
	if err != nil {
		testenv.Require(t, fmt.Sprintf("a working bubblewrap (bwrap: %v)", err))
	}
}

// analyzer is testdata/analyzer.sh, absolute, and its folder.
func analyzer(t *testing.T) (script, dir string) {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "analyzer.sh"), dir
}

// memReports is a ReportStore in memory.
type memReports struct {
	mu sync.Mutex
	m  map[string][]byte
	// fail, if set, fails every Put.
	fail error
}

func (r *memReports) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	if r.fail != nil {
		return 0, r.fail
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]byte{}
	}
	r.m[key] = b
	return int64(len(b)), nil
}

func (r *memReports) get(key string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[key]
}

// testConfig is a bwrap engine around the test analyzer.
func testConfig(t *testing.T, reports sandbox.ReportStore) sandbox.Config {
	script, dir := analyzer(t)
	return sandbox.Config{
		Name:    "analyzer",
		Command: []string{"/bin/bash", script, "{path}"},
		ROBinds: []string{dir},
		Timeout: 20 * time.Second,
		Report:  sandbox.ReportConfig{SignatureField: "signature"},
		Reports: reports,
	}
}

func newEngine(t *testing.T, cfg sandbox.Config) *sandbox.Engine {
	t.Helper()
	e, err := sandbox.New(t.Context(), cfg, testenv.Logger(t, -4))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func sample(t *testing.T, data string) scan.Sample {
	t.Helper()
	b := spool.Bytes([]byte(data))
	t.Cleanup(func() { b.Close() })
	return b.Sample("sample.bin")
}

// scanNorm scans and normalises the answer as the pipeline does.
func scanNorm(ctx context.Context, e *sandbox.Engine, s scan.Sample) scan.Result {
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

// reportJSON returns the kept report of r, decoded.
func reportJSON(t *testing.T, reports *memReports, r scan.Result) map[string]any {
	t.Helper()
	if r.Report == nil {
		t.Fatalf("got no report (%s/%s: %s)", r.Verdict, r.Reason, r.Detail)
	}
	b := reports.get(r.Report.SHA256)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("report %q: %v", b, err)
	}
	return m
}

// isolations are the modes every verdict test runs in.
var isolations = []string{sandbox.IsolationBwrap, sandbox.IsolationNone}

func TestScanDecides(t *testing.T) {
	requireBwrap(t)
	for _, iso := range isolations {
		t.Run(iso, func(t *testing.T) {
			reports := &memReports{}
			cfg := testConfig(t, reports)
			cfg.Isolation = iso
			cfg.Timeout = 3 * time.Second
			cfg.Report.MaxSize = 1 << 10
			cfg.Limits.FileSize = 1 << 20
			e := newEngine(t, cfg)
			for _, tc := range []struct {
				name    string
				sample  string
				verdict scan.Verdict
				reason  scan.Reason
				sigs    []string
				detail  []string
				report  bool
			}{
				{name: "exit 0 is clean, with its report", sample: "hello", verdict: scan.Clean, report: true},
				{name: "exit 1 is infected, named by the JSON report", sample: "EVIL",
					verdict: scan.Infected, sigs: []string{"Test.Evil.One", "Test.Evil.Two"}, report: true},
				{name: "timeout is an error with reason timeout", sample: "SLEEP 30",
					verdict: scan.Error, reason: scan.ReasonTimeout, detail: []string{"timed out after 3s"}},
				{name: "a crash is an error", sample: "CRASH",
					verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"signal 11", "neither 0 (clean) nor 1 (infected)"}},
				{name: "exit 2 is an error", sample: "EXIT 2",
					verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"exit code 2", "exiting 2"}},
				{name: "exit 0 without a report is an error", sample: "NOREPORT",
					verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"without writing a report"}},
				{name: "a report over the limit is an error", sample: "BIGREPORT 2000",
					verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"2000 bytes, over report.max_size (1024)"}},
				{name: "a report at the limit is kept", sample: "BIGREPORT 1024", verdict: scan.Clean, report: true},
				{name: "a report is cut at the file size limit", sample: "BIGREPORT 3000000",
					verdict: scan.Error, reason: scan.ReasonEngineError, detail: []string{"1048576 bytes, over report.max_size"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := scanNorm(t.Context(), e, sample(t, tc.sample+"\n"))
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
					if (got.Report != nil) != tc.report {
						t.Fatalf("got report %+v, want one: %t", got.Report, tc.report)
					}
					if got.Report != nil {
						b := reports.get(got.Report.SHA256)
						if int64(len(b)) != got.Report.Size || len(b) == 0 {
							t.Errorf("kept report is %d bytes, reference says %d", len(b), got.Report.Size)
						}
					}
				})
			}
		})
	}
}

// TestBindUnderTmp: an analyzer kept under /tmp (as in a checkout there)
// is seen inside the sandbox, whose own /tmp is a fresh tmpfs: the binds
// go over it rather than under it.
func TestBindUnderTmp(t *testing.T) {
	requireBwrap(t)
	script, _ := analyzer(t)
	dir, err := os.MkdirTemp("/tmp", "lazaret-analyzer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Readable by the sandbox's host user when the tests run as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(dir, "analyzer.sh")
	if err := os.WriteFile(moved, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, &memReports{})
	cfg.Command, cfg.ROBinds = []string{"/bin/bash", moved, "{path}"}, []string{dir}
	got := scanNorm(t.Context(), newEngine(t, cfg), sample(t, "hello\n"))
	if got.Verdict != scan.Clean {
		t.Fatalf("got %s/%q (%s), want clean", got.Verdict, got.Reason, got.Detail)
	}
}

func TestReportContentTypeAndSignatures(t *testing.T) {
	requireBwrap(t)
	reports := &memReports{}
	cfg := testConfig(t, reports)
	e := newEngine(t, cfg)
	got := scanNorm(t.Context(), e, sample(t, "EVIL\n"))
	if got.Report == nil || got.Report.ContentType != "application/json" {
		t.Fatalf("got report %+v, want application/json", got.Report)
	}
	if m := reportJSON(t, reports, got); m["verdict"] != "infected" || m["name"] != "sample.bin" || m["uid"] != float64(sandbox.NobodyID) {
		t.Errorf("got report %v, want verdict infected, name sample.bin, uid %d", m, sandbox.NobodyID)
	}

	// Without a signature field, the first line on standard output.
	cfg.Report = sandbox.ReportConfig{ContentType: "application/vnd.test+json"}
	e = newEngine(t, cfg)
	got = scanNorm(t.Context(), e, sample(t, "EVIL\n"))
	if gs := signatures(got); !slices.Equal(gs, []string{"Test.Evil.Stdout"}) {
		t.Errorf("got signatures %q, want the first line of stdout", gs)
	}
	if got.Report == nil || got.Report.ContentType != "application/vnd.test+json" {
		t.Errorf("got report %+v, want the configured content type", got.Report)
	}

	// An optional report may be missing.
	cfg.Report.Optional = true
	e = newEngine(t, cfg)
	if got = scanNorm(t.Context(), e, sample(t, "NOREPORT\n")); got.Verdict != scan.Clean || got.Report != nil {
		t.Errorf("optional report: got %s (%s), report %+v; want clean without a report", got.Verdict, got.Detail, got.Report)
	}
}

// TestRunnerFailures breaks what runs around the analyzer: the errors
// must not read as the analyzer's exit code 1, "infected".
func TestRunnerFailures(t *testing.T) {
	requireBwrap(t)
	t.Run("analyzer program missing", func(t *testing.T) {
		for _, iso := range isolations {
			cfg := testConfig(t, &memReports{})
			cfg.Isolation = iso
			cfg.Command = []string{"lazaret-no-such-analyzer", "{path}"}
			e := newEngine(t, cfg)
			if err := e.Ping(t.Context()); err == nil {
				t.Errorf("%s: ping: got nil error for a missing program", iso)
			}
			got := scanNorm(t.Context(), e, sample(t, "hello\n"))
			if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError || !strings.Contains(got.Detail, "exit code 127") {
				t.Errorf("%s: got %s/%s (%s), want an engine error with exit code 127", iso, got.Verdict, got.Reason, got.Detail)
			}
		}
	})
	t.Run("bwrap set-up fails", func(t *testing.T) {
		rules, err := os.MkdirTemp("", "lazaret-rules-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(rules)
		if err := os.Chmod(rules, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, &memReports{})
		cfg.ROBinds = append(cfg.ROBinds, rules)
		e := newEngine(t, cfg)
		// Gone after the engine was built: bwrap cannot bind it, and
		// exits 1 itself.
		os.RemoveAll(rules)
		got := scanNorm(t.Context(), e, sample(t, "EVIL\n"))
		if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError || !strings.Contains(got.Detail, "did not run") {
			t.Errorf("got %s/%s (%s), want an engine error saying the analyzer did not run", got.Verdict, got.Reason, got.Detail)
		}
	})
}

// TestReportCutAtFileSize: a report as large as limits.file_size allows
// may have been cut there by a program that the limit stopped while the
// analyzer went on (here a pipe's tr, killed by SIGXFSZ, in a script that
// then exits 0): an error, even when report.max_size would take it.
func TestReportCutAtFileSize(t *testing.T) {
	requireBwrap(t)
	for _, iso := range isolations {
		t.Run(iso, func(t *testing.T) {
			cfg := testConfig(t, &memReports{})
			cfg.Isolation = iso
			cfg.Limits.FileSize = 1 << 20
			cfg.Report.MaxSize = 2 << 20
			e := newEngine(t, cfg)
			got := scanNorm(t.Context(), e, sample(t, "BIGREPORT 3000000\n"))
			if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError || !strings.Contains(got.Detail, "limits.file_size") {
				t.Errorf("report cut at the file size limit: got %s/%s (%s), want an engine error naming limits.file_size", got.Verdict, got.Reason, got.Detail)
			}
			got = scanNorm(t.Context(), e, sample(t, fmt.Sprintf("BIGREPORT %d\n", 1<<20-1)))
			if got.Verdict != scan.Clean || got.Report == nil || got.Report.Size != 1<<20-1 {
				t.Errorf("report just under the file size limit: got %s (%s), report %+v; want clean, kept", got.Verdict, got.Detail, got.Report)
			}
		})
	}
}

// tamperingReports is a ReportStore that, before it reads the report it
// is given, overwrites the run's report file, as another process of the
// analyzer's user could, and then checks that the bytes it is given are
// those of the key.
type tamperingReports struct {
	memReports
	glob string // finds the run's report file
}

func (r *tamperingReports) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	files, _ := filepath.Glob(r.glob)
	if len(files) != 1 {
		return 0, fmt.Errorf("found report files %q, want one", files)
	}
	if err := os.WriteFile(files[0], []byte(`{"verdict": "tampered"}`), 0o600); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return 0, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != key {
		return 0, fmt.Errorf("got %q under key %s, whose bytes they are not", b, key)
	}
	return r.memReports.Put(ctx, key, bytes.NewReader(b))
}

// TestReportKeptAsHashed: the bytes kept are those hashed for the key,
// even when the report file changes in between.
func TestReportKeptAsHashed(t *testing.T) {
	requireBwrap(t)
	tmp, err := os.MkdirTemp("", "lazaret-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	// The analyzer's user must reach its files through the folder.
	if err := os.Chmod(tmp, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	reports := &tamperingReports{glob: filepath.Join(tmp, "lazaret-sandbox-*", "report")}
	e := newEngine(t, testConfig(t, reports))
	got := scanNorm(t.Context(), e, sample(t, "hello\n"))
	if got.Verdict != scan.Clean {
		t.Fatalf("got %s/%s (%s), want clean", got.Verdict, got.Reason, got.Detail)
	}
	if m := reportJSON(t, &reports.memReports, got); m["verdict"] != "clean" {
		t.Errorf("got report %v, want the analyzer's", m)
	}
}

func TestReportStoreFailure(t *testing.T) {
	requireBwrap(t)
	e := newEngine(t, testConfig(t, &memReports{fail: fmt.Errorf("disk full")}))
	got := scanNorm(t.Context(), e, sample(t, "hello\n"))
	if got.Verdict != scan.Error || !strings.Contains(got.Detail, "disk full") {
		t.Errorf("clean run, report not kept: got %s (%s), want an error", got.Verdict, got.Detail)
	}
	// What an analyzer found stands when its report cannot be kept.
	got = scanNorm(t.Context(), e, sample(t, "EVIL\n"))
	if got.Verdict != scan.Infected || !strings.Contains(got.Detail, "disk full") {
		t.Errorf("infected run, report not kept: got %s (%s), want infected with the error noted", got.Verdict, got.Detail)
	}
}

func TestMaxSizeSkips(t *testing.T) {
	requireBwrap(t)
	cfg := testConfig(t, &memReports{})
	cfg.MaxSize = 4
	e := newEngine(t, cfg)
	got := scanNorm(t.Context(), e, sample(t, "EVIL\n"))
	if got.Verdict != scan.Skipped || got.Reason != scan.ReasonTooLarge {
		t.Errorf("got %s/%s, want skipped/too_large", got.Verdict, got.Reason)
	}
}

// TestNoNetwork has the analyzer connect to a port listening on the
// host's loopback: refused inside a bwrap sandbox, and — the control that
// proves the test can tell — connected without isolation.
func TestNoNetwork(t *testing.T) {
	requireBwrap(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	for iso, want := range map[string]string{sandbox.IsolationBwrap: "refused", sandbox.IsolationNone: "connected"} {
		t.Run(iso, func(t *testing.T) {
			reports := &memReports{}
			cfg := testConfig(t, reports)
			cfg.Isolation = iso
			e := newEngine(t, cfg)
			got := scanNorm(t.Context(), e, sample(t, fmt.Sprintf("NET %d\n", port)))
			if m := reportJSON(t, reports, got); m["network"] != want {
				t.Errorf("got network %v, want %s", m["network"], want)
			}
		})
	}
}

func TestSampleReadOnly(t *testing.T) {
	requireBwrap(t)
	for _, user := range []string{"", "0"} {
		t.Run("user="+user, func(t *testing.T) {
			reports := &memReports{}
			cfg := testConfig(t, reports)
			cfg.User = user
			if user != "" && os.Geteuid() != 0 {
				t.Skip("only root chooses the user")
			}
			e := newEngine(t, cfg)
			// A file-backed body: the one a queued upload is scanned from.
			p := filepath.Join(t.TempDir(), "sample")
			if err := os.WriteFile(p, []byte("WRITE\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			body, err := spool.File(t.Context(), p, spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			got := scanNorm(t.Context(), e, body.Sample("sample"))
			if m := reportJSON(t, reports, got); m["sample_write"] != "refused" {
				t.Errorf("got sample_write %v, want refused", m["sample_write"])
			}
			if b, _ := os.ReadFile(p); string(b) != "WRITE\n" {
				t.Errorf("sample changed to %q", b)
			}
		})
	}
}

// TestOnlyTmpWritable: inside a bwrap sandbox the analyzer can create
// files in /tmp (bounded by limits.tmp_size) and nowhere else; its report
// is the one other thing it writes. bwrap's /dev, a tmpfs the sandbox's
// user owns with no size of its own, was writable.
func TestOnlyTmpWritable(t *testing.T) {
	requireBwrap(t)
	reports := &memReports{}
	e := newEngine(t, testConfig(t, reports))
	got := scanNorm(t.Context(), e, sample(t, "WRITABLE\n"))
	m := reportJSON(t, reports, got)
	var writable []string
	for _, d := range m["writable"].([]any) {
		writable = append(writable, d.(string))
	}
	if !slices.Equal(writable, []string{"/tmp"}) {
		t.Errorf("got writable folders %q, want only /tmp", writable)
	}
}

// markerProcs lists the processes whose command line starts with marker.
func markerProcs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, de := range ents {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + de.Name() + "/cmdline")
		if err == nil && bytes.HasPrefix(cmd, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestTimeoutKillsEverything has the analyzer leave children, one of them
// in a session of its own, and time out: none may survive the scan.
func TestTimeoutKillsEverything(t *testing.T) {
	requireBwrap(t)
	marker := fmt.Sprintf("lazaret-sandbox-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		for _, pid := range markerProcs(marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	cfg := testConfig(t, &memReports{})
	cfg.Timeout = 2 * time.Second
	e := newEngine(t, cfg)
	done := make(chan scan.Result, 1)
	go func() { done <- scanNorm(t.Context(), e, sample(t, "FORK "+marker+"\n")) }()
	// The children are there while it runs...
	deadline := time.Now().Add(5 * time.Second)
	for len(markerProcs(marker)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(markerProcs(marker)); n < 2 {
		t.Fatalf("got %d marked children while running, want 2: the test cannot see them", n)
	}
	got := <-done
	if got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
		t.Errorf("got %s/%s (%s), want error/timeout", got.Verdict, got.Reason, got.Detail)
	}
	// ...and gone once the scan has returned.
	if pids := markerProcs(marker); len(pids) > 0 {
		t.Errorf("processes %v survived the timeout", pids)
	}
}

func TestCallerCancel(t *testing.T) {
	requireBwrap(t)
	e := newEngine(t, testConfig(t, &memReports{}))
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	got := scanNorm(ctx, e, sample(t, "SLEEP 30\n"))
	if got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
		t.Errorf("caller's deadline: got %s/%s (%s), want error/timeout", got.Verdict, got.Reason, got.Detail)
	}
}

func TestLimits(t *testing.T) {
	requireBwrap(t)
	reports := &memReports{}
	cfg := testConfig(t, reports)
	cfg.Limits = sandbox.Limits{CPUTime: time.Second, FileSize: 1 << 20, Processes: 8}
	cfg.Timeout = 20 * time.Second
	e := newEngine(t, cfg)

	t.Run("cpu_time", func(t *testing.T) {
		got := scanNorm(t.Context(), e, sample(t, "CPU\n"))
		if got.Verdict != scan.Error || got.Reason != scan.ReasonEngineError || !strings.Contains(got.Detail, "limits.cpu_time") {
			t.Errorf("got %s/%s (%s), want an engine error naming limits.cpu_time", got.Verdict, got.Reason, got.Detail)
		}
	})
	t.Run("file_size", func(t *testing.T) {
		got := scanNorm(t.Context(), e, sample(t, "FILESIZE 2000000\n"))
		if m := reportJSON(t, reports, got); m["file"] != "refused" {
			t.Errorf("got file %v, want refused", m["file"])
		}
	})
	t.Run("processes", func(t *testing.T) {
		if os.Geteuid() == 0 && cfg.User == "0" {
			t.Skip("the kernel does not limit root's processes")
		}
		got := scanNorm(t.Context(), e, sample(t, "FORKS 40\n"))
		m := reportJSON(t, reports, got)
		if n, _ := m["forks"].(float64); n >= 8 {
			t.Errorf("got %v forks, want fewer than the limit of 8", m["forks"])
		}
	})
	t.Run("memory", func(t *testing.T) {
		cfg := testConfig(t, reports)
		cfg.Limits.Memory = 1 // nothing can start in one byte of address space
		if _, err := sandbox.New(t.Context(), cfg, nil); err == nil {
			t.Error("New with 1 byte of memory: got nil error, want the probe to fail")
		}
	})
}

func TestEnvironment(t *testing.T) {
	requireBwrap(t)
	for _, iso := range isolations {
		t.Run(iso, func(t *testing.T) {
			reports := &memReports{}
			cfg := testConfig(t, reports)
			cfg.Isolation = iso
			cfg.Env = map[string]string{"EXTRA": "yes"}
			cfg.Report.ContentType = "text/plain"
			e := newEngine(t, cfg)
			got := scanNorm(t.Context(), e, sample(t, "ENV\n"))
			if got.Report == nil {
				t.Fatalf("got no report: %s", got.Detail)
			}
			env := string(reports.get(got.Report.SHA256))
			for _, want := range []string{"EXTRA=yes", "LC_ALL=C", "LAZARET_SAMPLE_NAME=sample.bin", "LAZARET_REPORT="} {
				if !strings.Contains(env, want) {
					t.Errorf("environment lacks %q:\n%s", want, env)
				}
			}
			if strings.Contains(env, "hunter2") {
				t.Errorf("lazaret's environment reached the analyzer:\n%s", env)
			}
		})
	}
}

func TestWorkersBoundRuns(t *testing.T) {
	requireBwrap(t)
	cfg := testConfig(t, &memReports{})
	cfg.Workers = 1
	e := newEngine(t, cfg)
	// One slow run holds the only slot; a second, under a short
	// deadline, times out waiting for it.
	slow := make(chan scan.Result, 1)
	go func() { slow <- scanNorm(t.Context(), e, sample(t, "SLEEP 2\n")) }()
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if got := scanNorm(ctx, e, sample(t, "hello\n")); got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
		t.Errorf("waiting run: got %s/%s, want error/timeout", got.Verdict, got.Reason)
	}
	if got := <-slow; got.Verdict != scan.Clean {
		t.Errorf("slow run: got %s (%s), want clean", got.Verdict, got.Detail)
	}
}

func TestNoLeftoverFiles(t *testing.T) {
	requireBwrap(t)
	tmp := t.TempDir()
	// The analyzer's user must reach its files through the folders.
	for _, d := range []string{tmp, filepath.Dir(tmp)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TMPDIR", tmp)
	e := newEngine(t, testConfig(t, &memReports{}))
	for _, s := range []string{"hello\n", "EVIL\n", "CRASH\n"} {
		scanNorm(t.Context(), e, sample(t, s))
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		var names []string
		for _, de := range ents {
			names = append(names, de.Name())
		}
		t.Errorf("left in the temp folder: %v", names)
	}
}

func TestNewRefuses(t *testing.T) {
	requireBwrap(t)
	script, dir := analyzer(t)
	for _, tc := range []struct {
		name string
		cfg  func(*sandbox.Config)
		want string
	}{
		{"no command", func(c *sandbox.Config) { c.Command = nil }, "command: required"},
		{"program outside the sandbox", func(c *sandbox.Config) { c.Command = []string{script}; c.ROBinds = nil }, "not inside the sandbox"},
		{"relative program", func(c *sandbox.Config) { c.Command = []string{"./analyzer.sh"} }, "absolute path or a name"},
		{"unknown isolation", func(c *sandbox.Config) { c.Isolation = "docker" }, `isolation: "docker"`},
		{"mountpoint over the system", func(c *sandbox.Config) { c.Mountpoint = "/usr/share" }, "mountpoint"},
		{"input file name with a slash", func(c *sandbox.Config) { c.InputFilename = "a/b" }, "input_filename"},
		{"missing bind", func(c *sandbox.Config) { c.ROBinds = []string{dir, "/nonexistent/rules"} }, "ro_binds[1]"},
		{"reserved variable", func(c *sandbox.Config) { c.Env = map[string]string{sandbox.EnvReport: "/x"} }, "LAZARET_REPORT is set by the engine"},
		{"bad content type", func(c *sandbox.Config) { c.Report.ContentType = "not a type" }, "report.content_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, nil)
			tc.cfg(&cfg)
			_, err := sandbox.New(t.Context(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestUnavailableIsolationRefusesToStart hides bubblewrap: an engine
// configured for it must not start, and must not fall back to none.
func TestUnavailableIsolationRefusesToStart(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		testenv.Require(t, "prlimit (util-linux)")
	}
	// A PATH with prlimit and without bwrap.
	dir := t.TempDir()
	if err := os.Symlink(prlimit, filepath.Join(dir, "prlimit")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	e, err := sandbox.New(t.Context(), testConfig(t, nil), nil)
	if err == nil || e != nil || !strings.Contains(err.Error(), "isolation bwrap") {
		t.Errorf("got %v, %v; want no engine and an error about isolation bwrap", e, err)
	}
	// Nor without prlimit, which applies the limits.
	t.Setenv("PATH", t.TempDir())
	cfg := testConfig(t, nil)
	cfg.Isolation = sandbox.IsolationNone
	if _, err := sandbox.New(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "prlimit") {
		t.Errorf("got %v, want an error about prlimit", err)
	}
}

func TestVersion(t *testing.T) {
	requireBwrap(t)
	cfg := testConfig(t, nil)
	e := newEngine(t, cfg)
	v1, err := e.Version(t.Context())
	if err != nil || !strings.HasPrefix(v1, "sandbox/") {
		t.Fatalf("got %q, %v; want a derived sandbox/ version", v1, err)
	}
	cfg.Command = append(cfg.Command, "--more")
	e2 := newEngine(t, cfg)
	if v2, _ := e2.Version(t.Context()); v2 == v1 {
		t.Errorf("a different command has the same version %q", v1)
	}
	cfg.Version = "analyzer 1.0"
	if v, _ := newEngine(t, cfg).Version(t.Context()); v != "analyzer 1.0" {
		t.Errorf("got %q, want the configured version", v)
	}
	if err := e.Ping(t.Context()); err != nil {
		t.Errorf("ping: %v", err)
	}
}

// TestProbeAsOwnUser: an engine that keeps lazaret's own user shows the
// analyzer the sample in place (no private copy), New's probe included,
// and the probe leaves nothing in the temp folder.
func TestProbeAsOwnUser(t *testing.T) {
	requireBwrap(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg := testConfig(t, &memReports{})
	cfg.User = strconv.Itoa(os.Geteuid())
	e := newEngine(t, cfg)
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		var names []string
		for _, de := range ents {
			names = append(names, de.Name())
		}
		t.Errorf("left in the temp folder by New: %v", names)
	}
	if got := scanNorm(t.Context(), e, sample(t, "hello\n")); got.Verdict != scan.Clean {
		t.Errorf("got verdict %s (%s), want clean", got.Verdict, got.Detail)
	}
}
