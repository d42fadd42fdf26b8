package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// rabbitmqServer is Debian's rabbitmq-server script (not the
// /usr/sbin wrapper, which switches user and HOME).
const rabbitmqServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// testDefinitions preload user lazaret (password lazaret) and vhost "/":
// password_hash = base64(salt "lzr1" + sha256(salt + password)).
const testDefinitions = `{"users": [{"name": "lazaret", "password_hash": "bHpyMQcAQOZ4qeETjpK1L3o3L+u7DBX55dBJPRVal0Sl9u1w",
  "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}],
 "vhosts": [{"name": "/"}],
 "permissions": [{"user": "lazaret", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}`

// RabbitMQ is a private RabbitMQ node that a test may stop and start
// again on the same data folder (Stop, Start), to test what survives a
// broker restart.
type RabbitMQ struct {
	t                        testing.TB
	dir                      string
	port, distPort, epmdPort int
	epmd, node               *exec.Cmd
	nodeDone                 chan struct{}
}

func mustFreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return p
}

// StartRabbitMQ starts a node with its own epmd, all on free ports, and
// stops both at cleanup. It skips without rabbitmq-server unless CI is
// set.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	if _, err := os.Stat(rabbitmqServer); err != nil {
		Require(t, "rabbitmq-server ("+rabbitmqServer+")")
	}
	r := &RabbitMQ{t: t, dir: t.TempDir(), port: mustFreePort(t), distPort: mustFreePort(t), epmdPort: mustFreePort(t)}
	for _, d := range []string{"home", "log", "mnesia"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"defs.json":       testDefinitions,
		"rabbitmq.conf":   fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nload_definitions = %s\n", r.port, filepath.Join(r.dir, "defs.json")),
		"enabled_plugins": "[].\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Our own epmd, so that none outlives the test.
	r.epmd = exec.Command("epmd", "-address", "127.0.0.1", "-port", strconv.Itoa(r.epmdPort))
	if err := r.epmd.Start(); err != nil {
		Require(t, "epmd: "+err.Error())
	}
	t.Cleanup(func() {
		r.Stop()
		r.epmd.Process.Kill()
		r.epmd.Wait()
	})
	r.Start()
	return r
}

// URL is the node's AMQP URL (user and password lazaret).
func (r *RabbitMQ) URL() string {
	return fmt.Sprintf("amqp://lazaret:lazaret@127.0.0.1:%d/", r.port)
}

// Start starts the node and waits until it answers.
func (r *RabbitMQ) Start() {
	t := r.t
	t.Helper()
	cmd := exec.Command(rabbitmqServer)
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(r.dir, "home"),
		fmt.Sprintf("RABBITMQ_NODENAME=lzt%d@localhost", r.port),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(r.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(r.distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(r.epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(r.dir, "enabled_plugins"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	// The script, beam.smp and its helpers in one process group, stopped
	// together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(r.dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq-server: %v", err)
	}
	r.node = cmd
	r.nodeDone = make(chan struct{})
	go func() {
		cmd.Wait()
		close(r.nodeDone)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		// RabbitMQ loads the definitions (the user) before it listens.
		err := PingAMQP(r.port)
		if err == nil {
			break
		}
		select {
		case <-r.nodeDone:
			log, _ := os.ReadFile(filepath.Join(r.dir, "stdout.log"))
			t.Fatalf("rabbitmq-server exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitmq-server not ready after 90s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("RabbitMQ node up on port %d after %s", r.port, time.Since(begin).Round(time.Millisecond))
}

// Stop stops the node (SIGTERM: beam.smp shuts down cleanly) and waits.
func (r *RabbitMQ) Stop() {
	if r.node == nil {
		return
	}
	pgid := r.node.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-r.nodeDone:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-r.nodeDone
	}
	// The script may exit before beam.smp; wait until the group is gone.
	for i := 0; i < 300 && syscall.Kill(-pgid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	r.node = nil
}

// PingAMQP sends the AMQP 0-9-1 protocol header to 127.0.0.1:port and
// expects a frame back (connection.start, frame type 1).
func PingAMQP(port int) error {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(conn, b); err != nil {
		return err
	}
	if b[0] != 1 {
		return fmt.Errorf("unexpected frame type %d", b[0])
	}
	return nil
}
