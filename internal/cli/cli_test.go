package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/testenv"
)

// run runs the CLI in-process and returns exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" },
	})
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScanBuiltinDefaults(t *testing.T) {
	dir := t.TempDir()
	eicar := write(t, dir, "eicar.com", testenv.EICAR)
	clean := write(t, dir, "clean.txt", []byte("hello\n"))
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string
	}{
		{"infected and clean", []string{"scan", eicar, clean}, "", ExitInfected,
			eicar + ": Eicar-Test-Signature FOUND\n" + clean + ": OK\n"},
		{"only clean", []string{"scan", clean}, "", ExitClean, clean + ": OK\n"},
		{"infected only flag", []string{"scan", "-i", eicar, clean}, "", ExitInfected,
			eicar + ": Eicar-Test-Signature FOUND\n"},
		{"missing file", []string{"scan", clean, filepath.Join(dir, "nope")}, "", ExitError,
			clean + ": OK\n" + filepath.Join(dir, "nope") + ": ERROR not_found\n"},
		{"infected beats error", []string{"scan", filepath.Join(dir, "nope"), eicar}, "", ExitInfected,
			filepath.Join(dir, "nope") + ": ERROR not_found\n" + eicar + ": Eicar-Test-Signature FOUND\n"},
		{"stdin", []string{"scan", "-"}, string(testenv.EICAR), ExitInfected, "-: Eicar-Test-Signature FOUND\n"},
		{"file list", []string{"scan", "--file-list", "-"}, clean + "\n\n" + eicar + "\n", ExitInfected,
			clean + ": OK\n" + eicar + ": Eicar-Test-Signature FOUND\n"},
		{"no paths", []string{"scan"}, "", ExitError, ""},
		{"unknown engine", []string{"scan", "--engine", "nope", clean}, "", ExitError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Errorf("got exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			if out != tc.wantOut {
				t.Errorf("got stdout\n%s\nwant\n%s", out, tc.wantOut)
			}
		})
	}
}

// TestScanBigFileList: a long list is scanned whole and in order.
func TestScanBigFileList(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := range 50 {
		data := []byte(fmt.Sprintf("file %d\n", i))
		if i%10 == 0 {
			data = testenv.EICAR
		}
		files = append(files, write(t, dir, fmt.Sprintf("f%02d", i), data))
	}
	const n = 20000
	var list, want strings.Builder
	for i := range n {
		p := files[i%len(files)]
		fmt.Fprintln(&list, p)
		if i%10 == 0 {
			fmt.Fprintf(&want, "%s: Eicar-Test-Signature FOUND\n", p)
		} else {
			fmt.Fprintf(&want, "%s: OK\n", p)
		}
	}
	listFile := write(t, t.TempDir(), "list.txt", []byte(list.String()))
	code, out, errOut := run(t, "", "scan", "-j", "4", "--file-list", listFile)
	if code != ExitInfected {
		t.Errorf("got exit %d, want %d (stderr %q)", code, ExitInfected, errOut)
	}
	if got := strings.Count(out, "\n"); got != n {
		t.Fatalf("got %d result lines, want %d", got, n)
	}
	if out != want.String() {
		t.Error("results are not the list's files in order")
	}
}

// TestScanFileListStreams: results come while the list is still being
// written, so the list is not read whole first.
func TestScanFileListStreams(t *testing.T) {
	dir := t.TempDir()
	clean := write(t, dir, "clean.txt", []byte("hello\n"))
	eicar := write(t, dir, "eicar.com", testenv.EICAR)
	pr, pw := io.Pipe()
	defer pr.Close()
	out := &notifyBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- Run(context.Background(), []string{"scan", "--file-list", "-"}, Env{
			Stdin: pr, Stdout: out, Stderr: io.Discard, Getenv: func(string) string { return "" },
		})
	}()
	if _, err := fmt.Fprintln(pw, clean); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for !strings.Contains(out.String(), clean+": OK\n") {
		select {
		case <-out.changed:
		case code := <-done:
			t.Fatalf("scan ended (exit %d) before the list did: %q", code, out.String())
		case <-timeout:
			t.Fatalf("no result for the first line while the list is open: %q", out.String())
		}
	}
	fmt.Fprintln(pw, eicar)
	pw.Close()
	if code := <-done; code != ExitInfected {
		t.Errorf("got exit %d, want %d", code, ExitInfected)
	}
	if want := clean + ": OK\n" + eicar + ": Eicar-Test-Signature FOUND\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// notifyBuffer is a Stdout that signals each write.
type notifyBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case n.changed <- struct{}{}:
	default:
	}
	return n.b.Write(p)
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// TestScanFileListErrors: a list that cannot be opened is the one
// result; a list that breaks midway has its earlier lines scanned; stdin
// cannot be both the list and a sample.
func TestScanFileListErrors(t *testing.T) {
	dir := t.TempDir()
	clean := write(t, dir, "clean.txt", []byte("hello\n"))
	missing := filepath.Join(dir, "no-list.txt")
	long := write(t, dir, "long.txt", []byte(clean+"\n"+strings.Repeat("x", maxListLine+1)+"\n"))
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string
	}{
		{"missing list", []string{"scan", "--file-list", missing, clean}, "", ExitError, missing + ": ERROR not_found\n"},
		{"line too long", []string{"scan", "--file-list", long}, "", ExitError, clean + ": OK\n" + long + ": ERROR io_error\n"},
		{"stdin twice", []string{"scan", "--file-list", "-", "-"}, clean + "\n", ExitError, ""},
		{"stdin line in a stdin list", []string{"scan", "--file-list", "-"}, clean + "\n-\n", ExitError, clean + ": OK\n-: ERROR io_error\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Errorf("got exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			if out != tc.wantOut {
				t.Errorf("got stdout %q, want %q", out, tc.wantOut)
			}
		})
	}
}

func TestScanRecursive(t *testing.T) {
	dir := t.TempDir()
	top := write(t, dir, "top.txt", []byte("top"))
	deep := write(t, dir, "sub/deeper/eicar.com", testenv.EICAR)
	code, out, _ := run(t, "", "scan", dir)
	if code != ExitClean || out != top+": OK\n" {
		t.Errorf("without --recursive: got %d %q, want only the top file", code, out)
	}
	code, out, _ = run(t, "", "scan", "--recursive", dir)
	want := deep + ": Eicar-Test-Signature FOUND\n" + top + ": OK\n"
	if code != ExitInfected || out != want {
		t.Errorf("with --recursive: got %d %q, want %q", code, out, want)
	}
}

func TestScanJSON(t *testing.T) {
	dir := t.TempDir()
	eicar := write(t, dir, "eicar.com", testenv.EICAR)
	code, out, _ := run(t, "", "scan", "--json", eicar)
	if code != ExitInfected {
		t.Fatalf("got exit %d, want 1", code)
	}
	var job scan.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("not JSON: %v: %q", err, out)
	}
	if job.Verdict != scan.Infected || job.Status != scan.Done || job.Size != 68 ||
		job.SHA256 != "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" ||
		job.Source.Kind != "file" || job.Source.Path != eicar || job.ID == "" {
		t.Errorf("got job %+v", job)
	}
	if len(job.Findings) != 1 || job.Findings[0] != (scan.Finding{Engine: "builtin", Signature: "Eicar-Test-Signature"}) {
		t.Errorf("got findings %+v", job.Findings)
	}
}

func clamdConfig(t *testing.T, addr string) string {
	t.Helper()
	return write(t, t.TempDir(), "lazaret.yaml", fmt.Appendf(nil,
		"engines:\n  - name: clamav\n    type: clamd\n    address: %s\n    timeout: 10s\n", addr))
}

func TestScanClamd(t *testing.T) {
	cfg := clamdConfig(t, testenv.ClamdAddr(t))
	dir := t.TempDir()
	eicar := write(t, dir, "eicar.com", testenv.EICAR)
	ndb := write(t, dir, "marker.bin", testenv.NDBSample())
	clean := write(t, dir, "clean.bin", testenv.Deterministic(t.Name(), 10000))
	code, out, errOut := run(t, "", "scan", "--config", cfg, eicar, ndb, clean)
	want := eicar + ": Eicar-Test-Signature.UNOFFICIAL FOUND\n" + ndb + ": Lazaret.Test.NDB.UNOFFICIAL FOUND\n" + clean + ": OK\n"
	if code != ExitInfected || out != want {
		t.Errorf("got %d %q (stderr %q), want 1 %q", code, out, errOut, want)
	}
}

func TestScanClamdDownIsNotClean(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	cfg := clamdConfig(t, c.TCP)
	c.Kill()
	clean := write(t, t.TempDir(), "clean.txt", []byte("hello"))
	code, out, errOut := run(t, "", "scan", "--config", cfg, clean)
	if code != ExitError || out != clean+": ERROR engine_error\n" {
		t.Errorf("got %d %q, want 2 and ERROR engine_error", code, out)
	}
	if !strings.Contains(errOut, "clamav") {
		t.Errorf("stderr does not name the engine: %q", errOut)
	}
}

func TestEngines(t *testing.T) {
	code, out, _ := run(t, "", "engines")
	if code != ExitClean || !strings.Contains(out, "builtin") || !strings.Contains(out, "yes") {
		t.Errorf("got %d %q", code, out)
	}
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	cfg := clamdConfig(t, c.TCP)
	code, out, _ = run(t, "", "engines", "--json", "--config", cfg)
	var st []struct {
		Name, Type, Version string
		Healthy             bool
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != ExitClean || len(st) != 1 ||
		!st[0].Healthy || !strings.HasPrefix(st[0].Version, "ClamAV ") || st[0].Type != "clamd" {
		t.Errorf("got %d %q (%v)", code, out, err)
	}
	c.Kill()
	code, out, _ = run(t, "", "engines", "--config", cfg)
	if code != ExitError || !strings.Contains(out, "no: ") {
		t.Errorf("clamd down: got %d %q, want 2 and unhealthy", code, out)
	}
}

func TestBadConfig(t *testing.T) {
	cfg := write(t, t.TempDir(), "bad.yaml", []byte("engines:\n  - name: x\n    type: clamd\n"))
	code, _, errOut := run(t, "", "scan", "--config", cfg, "x")
	if code != ExitError || !strings.Contains(errOut, "engines[0].address") {
		t.Errorf("got %d %q", code, errOut)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := run(t, "", "version"); code != 0 || !strings.HasPrefix(out, "lazaret ") {
		t.Errorf("version: got %d %q", code, out)
	}
	if code, out, _ := run(t, "", "--help"); code != 0 || !strings.Contains(out, "scan") {
		t.Errorf("help: got %d %q", code, out)
	}
	if code, _, _ := run(t, "", "frobnicate"); code != ExitError {
		t.Errorf("unknown command: got %d, want 2", code)
	}
}

func TestSweepFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a/clean.txt", []byte("fine"))
	write(t, dir, "a/b/eicar.com", testenv.EICAR)
	data := t.TempDir()
	code, out, errOut := run(t, "", "sweep", "--data-dir", data, dir)
	if code != ExitInfected || !strings.Contains(out, "2 listed, 2 scanned (1 clean, 1 infected") {
		t.Fatalf("first sweep: got %d %q %q", code, out, errOut)
	}
	// Resumed: nothing is scanned twice.
	code, out, _ = run(t, "", "sweep", "--data-dir", data, dir)
	if !strings.Contains(out, "0 scanned") || !strings.Contains(out, "2 done before") {
		t.Errorf("second sweep: got %d %q", code, out)
	}
	if code, _, _ := run(t, "", "sweep", "s3://"); code != ExitError {
		t.Errorf("bad target: got %d, want 2", code)
	}
}

func TestRescanCommand(t *testing.T) {
	data := t.TempDir()
	// Nothing stored yet: nothing to do, exit 0.
	code, out, errOut := run(t, "", "rescan", "--data-dir", data)
	if code != ExitClean || !strings.Contains(out, "0 jobs checked") {
		t.Errorf("got %d %q %q", code, out, errOut)
	}
}

// TestRescanPrunesKeptUploads: `lazaret rescan` first removes the kept
// uploads past keep_uploads_for.
func TestRescanPrunesKeptUploads(t *testing.T) {
	data := t.TempDir()
	cfg := write(t, t.TempDir(), "lazaret.yaml", []byte("keep_uploads: true\nkeep_uploads_for: 24h\n"))
	oldSum := strings.Repeat("a", 64)
	newSum := strings.Repeat("b", 64)
	old := write(t, data, "uploads/"+oldSum, []byte("old"))
	write(t, data, "uploads/"+newSum, []byte("new"))
	then := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "rescan", "--config", cfg, "--data-dir", data)
	if code != ExitClean {
		t.Fatalf("got %d %q %q", code, out, errOut)
	}
	ents, err := os.ReadDir(filepath.Join(data, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if len(left) != 1 || left[0] != newSum {
		t.Errorf("left %v, want only the upload kept within 24h", left)
	}
}

func TestProxyCommand(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/eicar.com" {
			w.Write(testenv.EICAR)
			return
		}
		w.Write([]byte("fine"))
	}))
	defer up.Close()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"proxy", "--upstream", up.URL, "--listen", addr, "--data-dir", t.TempDir()},
			Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	}()
	get := func(path string) int {
		for i := 0; i < 100; i++ {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("proxy never answered: %s", errb.String())
		return 0
	}
	if code := get("/ok.txt"); code != 200 {
		t.Errorf("clean: got %d", code)
	}
	if code := get("/eicar.com"); code != 409 {
		t.Errorf("infected: got %d, want 409", code)
	}
	cancel()
	if code := <-done; code != ExitClean {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	if code, _, _ := run(t, "", "proxy", "--upstream", up.URL, "--listen", "0.0.0.0:0"); code != ExitError {
		t.Errorf("non-loopback without --insecure-no-auth: got %d, want 2", code)
	}
}
