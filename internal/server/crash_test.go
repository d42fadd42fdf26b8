package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/testenv"
)

// envChildConfig makes the test binary run a server from that config
// instead of the tests: the crash test kills it with SIGKILL.
const envChildConfig = "LAZARET_TEST_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(envChildConfig); path != "" {
		cfg, err := config.Load(path, nil)
		if err == nil {
			err = Run(context.Background(), cfg, Options{HTTP: true, Workers: true}, time.Second)
		}
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, cfgPath, base string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildConfig+"="+cfgPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("child server not ready")
	return nil
}

// TestKillWorkerMidScan: a server killed with SIGKILL while scanning a
// queued job finishes that job after a restart, storing one result.
func TestKillWorkerMidScan(t *testing.T) {
	dir := t.TempDir()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lazaret.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `listen: 127.0.0.1:%d
data_dir: %s
log: {level: warn}
queue: {ack_wait: 2s}
engines:
  - name: slow
    type: command
    command: ["/bin/sh", "-c", "sleep 2", "sh", "{path}"]
    infected_when: {exit_codes: [1]}
    version: "1"
`, port, filepath.Join(dir, "data")), 0o644)
	c := &client{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	child := startChild(t, cfgPath, c.base)

	code, b := c.upload("/v1/jobs", "file", map[string][]byte{"x.txt": []byte("hello")})
	if code != 202 {
		t.Fatalf("got %d %s", code, b)
	}
	id := decodeJob(t, b).ID
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b := c.do("GET", "/v1/jobs/"+id, "", nil)
		if decodeJob(t, b).Status == scan.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never started: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	startChild(t, cfgPath, c.base)
	j := c.waitDoneWithin(id, 30*time.Second)
	if j.Verdict != scan.Clean || j.Attempts != 2 {
		t.Errorf("got verdict %s after %d attempts, want clean after 2", j.Verdict, j.Attempts)
	}
	if n := len(listAll(t, c)); n != 1 {
		t.Errorf("got %d jobs, want exactly 1", n)
	}
}

func listAll(t *testing.T, c *client) []scan.Job {
	t.Helper()
	code, b := c.do("GET", "/v1/jobs?limit=1000", "", nil)
	var page struct{ Jobs []scan.Job }
	if err := json.Unmarshal(b, &page); err != nil || code != 200 {
		t.Fatalf("list: %d %s", code, b)
	}
	return page.Jobs
}
