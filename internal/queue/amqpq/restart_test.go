package amqpq

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/testenv"
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

// rabbit is a private RabbitMQ node that a test may stop and start again
// on the same data folder.
type rabbit struct {
	t                        *testing.T
	dir                      string
	port, distPort, epmdPort int
	epmd, node               *exec.Cmd
	nodeDone                 chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRabbit starts a node with its own epmd, all on free ports, and
// stops both at cleanup.
func startRabbit(t *testing.T) *rabbit {
	t.Helper()
	if _, err := os.Stat(rabbitmqServer); err != nil {
		testenv.Require(t, "rabbitmq-server ("+rabbitmqServer+")")
	}
	r := &rabbit{t: t, dir: t.TempDir(), port: freePort(t), distPort: freePort(t), epmdPort: freePort(t)}
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
		testenv.Require(t, "epmd: "+err.Error())
	}
	t.Cleanup(func() {
		r.stop()
		r.epmd.Process.Kill()
		r.epmd.Wait()
	})
	r.start()
	return r
}

func (r *rabbit) url() string {
	return fmt.Sprintf("amqp://lazaret:lazaret@127.0.0.1:%d/", r.port)
}

// start starts the node and waits until it accepts the test user.
func (r *rabbit) start() {
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
		conn, err := amqp.DialConfig(r.url(), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			conn.Close()
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

// stop stops the node (SIGTERM: beam.smp shuts down cleanly) and waits.
func (r *rabbit) stop() {
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

// TestReconnectAfterBrokerRestart restarts a private RabbitMQ node under
// a running consumer and a waiting publisher: what was published before
// is still there, the publisher's message goes through once the broker is
// back, and the consumer resumes by itself.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts RabbitMQ twice (12-24 s each)")
	}
	t.Parallel()
	r := startRabbit(t)
	url := r.url()

	// kept has no consumer: its message must survive the restart.
	kept := openQueue(t, testConfig(url))
	q := openQueue(t, testConfig(url))
	ctx := context.Background()
	if err := kept.Publish(ctx, queue.Message{JobID: "job-kept"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan queue.Message, 10)
	consume(t, q, func(ctx context.Context, d queue.Delivery) {
		got <- d.Message()
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack: %v", err)
		}
	}, queue.ConsumeOptions{Concurrency: 2})
	receive := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m.JobID != want {
				t.Fatalf("got %+v, want %s", m, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %s", want)
		}
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-before"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	receive("job-before")

	r.stop()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := q.Ping(pctx); err == nil {
		t.Error("Ping with the broker down: got nil, want an error")
	}
	cancel()
	// A publish while the broker is down waits for it.
	published := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		published <- q.Publish(pctx, queue.Message{JobID: "job-during"})
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-published:
		t.Fatalf("Publish returned %v with the broker down, want it to wait", err)
	default:
	}
	r.start()

	if err := <-published; err != nil {
		t.Fatalf("Publish across the restart: %v", err)
	}
	receive("job-during")
	if err := q.Ping(ctx); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	wantDepth(t, kept, 1, 0)
	keptGot := make(chan queue.Message, 1)
	consume(t, kept, func(ctx context.Context, d queue.Delivery) {
		keptGot <- d.Message()
		_ = d.Ack(ctx)
	}, queue.ConsumeOptions{})
	select {
	case m := <-keptGot:
		if m.JobID != "job-kept" || m.Attempt != 1 {
			t.Errorf("got %+v, want job-kept attempt 1", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the message published before the restart did not come")
	}
	if err := q.Publish(ctx, queue.Message{JobID: "job-after"}); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	receive("job-after")
}
