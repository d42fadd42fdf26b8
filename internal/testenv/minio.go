package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvMinIOBin names the MinIO server binary (built from the Go module
// proxy; see INFRA.md). Without it, `minio` on PATH and ~/go/bin/minio
// are tried.
const EnvMinIOBin = "LAZARET_MINIO_BIN"

// MinIOBinary returns the MinIO server binary, or "".
func MinIOBinary() string {
	if p := os.Getenv(EnvMinIOBin); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, p := range []string{filepath.Join(home, "go", "bin", "minio"), "/root/go/bin/minio"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// MinIO is a MinIO server started for one test.
type MinIO struct {
	// Endpoint is "http://127.0.0.1:PORT".
	Endpoint       string
	User, Password string
	cmd            *exec.Cmd
	done           chan struct{}
}

// StartMinIO starts a MinIO server on 127.0.0.1 with a fresh data folder
// and extra environment (MINIO_NOTIFY_* targets, say); it stops at
// cleanup. It skips the test without a binary, unless CI is set.
func StartMinIO(t testing.TB, env map[string]string) *MinIO {
	t.Helper()
	bin := MinIOBinary()
	if bin == "" {
		Require(t, "a MinIO server binary ($"+EnvMinIOBin+")")
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cport, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	m := &MinIO{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), User: "lazaret-admin", Password: "lazaret-secret-0123", done: make(chan struct{})}
	// A certs folder of its own: one in ~/.minio/certs would silently turn on TLS.
	m.cmd = exec.Command(bin, "server", t.TempDir(), "--quiet", "--certs-dir", t.TempDir(),
		"--address", fmt.Sprintf("127.0.0.1:%d", port), "--console-address", fmt.Sprintf("127.0.0.1:%d", cport))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			m.cmd.Env = append(m.cmd.Env, kv)
		}
	}
	m.cmd.Env = append(m.cmd.Env, "MINIO_ROOT_USER="+m.User, "MINIO_ROOT_PASSWORD="+m.Password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	for k, v := range env {
		m.cmd.Env = append(m.cmd.Env, k+"="+v)
	}
	var logBuf strings.Builder
	m.cmd.Stdout, m.cmd.Stderr = &logBuf, &logBuf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		<-m.done
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(m.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return m
			}
		}
		select {
		case <-m.done:
			t.Fatalf("minio exited: %s", logBuf.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("minio not ready within 60s: %s", logBuf.String())
	return nil
}
