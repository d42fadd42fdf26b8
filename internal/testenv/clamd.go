package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClamdBinary returns the path of the clamd executable, or "".
func ClamdBinary() string {
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/clamd", "/usr/local/sbin/clamd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ClamdOptions configures a private clamd.
type ClamdOptions struct {
	// Conf holds extra clamd.conf lines ("StreamMaxLength 1M"); they
	// override the defaults of the same name.
	Conf []string
	// Signatures replaces the test signature files when not nil.
	Signatures map[string]string
}

// Clamd is a clamd process started for tests.
type Clamd struct {
	// TCP is "tcp://127.0.0.1:PORT"; Unix is "unix:///path".
	TCP, Unix string
	// SigDir is its database folder, Dir its working folder.
	SigDir, Dir string
	cmd         *exec.Cmd
	done        chan struct{}
}

var (
	sharedOnce  sync.Once
	sharedClamd *Clamd
	sharedErr   error
)

// ClamdAddr returns the address of a clamd loaded with Signatures: the one
// named by LAZARET_TEST_CLAMD, else one started once for this test binary.
func ClamdAddr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvClamd); a != "" {
		return a
	}
	sharedOnce.Do(func() {
		if ClamdBinary() == "" {
			sharedErr = fmt.Errorf("clamd binary not found")
			return
		}
		sharedClamd, sharedErr = startClamd(ClamdOptions{})
	})
	if sharedErr != nil {
		Require(t, "clamd ($"+EnvClamd+" or a clamd binary): "+sharedErr.Error())
	}
	return sharedClamd.TCP
}

// StartClamd starts a private clamd for one test and stops it at cleanup.
// Use it for tests that need their own limits or that stop clamd.
func StartClamd(t testing.TB, opts ClamdOptions) *Clamd {
	t.Helper()
	if ClamdBinary() == "" {
		Require(t, "a clamd binary")
	}
	c, err := startClamd(opts)
	if err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LaunchClamd starts a clamd outside a test (for benchmarks); the caller
// must Stop it.
func LaunchClamd(opts ClamdOptions) (*Clamd, error) { return startClamd(opts) }

func startClamd(opts ClamdOptions) (*Clamd, error) {
	// Short folder names: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "lzclamd")
	if err != nil {
		return nil, err
	}
	c := &Clamd{Dir: dir, SigDir: filepath.Join(dir, "sigs"), done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if opts.Signatures == nil {
		err = WriteSignatures(c.SigDir)
	} else {
		err = os.MkdirAll(c.SigDir, 0o755)
		for name, body := range opts.Signatures {
			if err == nil {
				err = os.WriteFile(filepath.Join(c.SigDir, name), []byte(body), 0o644)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "clamd.sock")
	conf := map[string]string{
		"Foreground":         "yes",
		"LogFile":            filepath.Join(dir, "clamd.log"),
		"TemporaryDirectory": filepath.Join(dir, "tmp"),
		"DatabaseDirectory":  c.SigDir,
		"LocalSocket":        sock,
		"TCPSocket":          fmt.Sprint(port),
		"TCPAddr":            "127.0.0.1",
		"StreamMaxLength":    "200M",
		"MaxFileSize":        "200M",
		"MaxScanSize":        "400M",
		"AlertExceedsMax":    "yes",
		"AlertEncrypted":     "yes",
		"MaxThreads":         "12",
	}
	for _, line := range opts.Conf {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		conf[k] = strings.TrimSpace(v)
	}
	var sb strings.Builder
	for k, v := range conf {
		fmt.Fprintf(&sb, "%s %s\n", k, v)
	}
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	c.TCP = fmt.Sprintf("tcp://127.0.0.1:%d", port)
	c.Unix = "unix://" + sock
	c.cmd = exec.Command(ClamdBinary(), "-c", confPath)
	// clamd dies with the test binary even if cleanup never runs.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if PingClamd(port) == nil {
			return c, nil
		}
		select {
		case <-c.done:
			log, _ := os.ReadFile(conf["LogFile"])
			return nil, fmt.Errorf("clamd exited at start: %s", log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.Stop()
	return nil, fmt.Errorf("clamd did not answer PING within 30s")
}

// PingClamd sends PING to clamd on 127.0.0.1:port and checks for PONG.
func PingClamd(port int) error {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		return err
	}
	if strings.TrimRight(reply, "\x00") != "PONG" {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	return nil
}

// PID is clamd's process ID.
func (c *Clamd) PID() int { return c.cmd.Process.Pid }

// Stop kills clamd and removes its folder.
func (c *Clamd) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		<-c.done
	}
	os.RemoveAll(c.Dir)
}

// Kill stops clamd without removing its folder, to test a daemon that
// went away.
func (c *Clamd) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		<-c.done
	}
}
