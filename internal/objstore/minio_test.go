package objstore

// The MinIO the integration tests run against.
//
// LAZARET_TEST_S3 (http://ACCESS:SECRET@127.0.0.1:9000) names a running
// server; otherwise one MinIO is started for the whole test binary from
// $LAZARET_MINIO_BIN, `minio` on PATH, or ~/go/bin/minio:
//
//	MINIO_ROOT_USER=... MINIO_ROOT_PASSWORD=... MINIO_BROWSER=off MINIO_UPDATE=off \
//	  minio server DATA --address 127.0.0.1:PORT --console-address 127.0.0.1:PORT2 --certs-dir CERTS
//
// ready when GET /minio/health/ready answers 200. Without either, the tests
// skip, or fail when CI is set. Every test makes its own bucket, so they
// run in parallel and against a shared external server alike.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/testenv"
)

const (
	envTestS3   = "LAZARET_TEST_S3"
	envMinioBin = "LAZARET_MINIO_BIN"

	testUser     = "lazaret-test"
	testPassword = "lazaret-test-secret"
)

// minioBinary finds the minio executable, or returns "".
func minioBinary() string {
	if p := os.Getenv(envMinioBin); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	cands := []string{"/root/go/bin/minio"}
	if h, err := os.UserHomeDir(); err == nil {
		cands = append(cands, filepath.Join(h, "go", "bin", "minio"))
	}
	for _, p := range cands {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// minioServer is a MinIO process started by the tests.
type minioServer struct {
	Endpoint string // http(s)://127.0.0.1:PORT
	User     string
	Password string

	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the start, where failures show
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMinio starts MinIO over dataDir. With certsDir holding public.crt
// and private.key it serves TLS, and pool must trust that certificate.
// A port taken between choosing and binding is retried.
func startMinio(dataDir, certsDir string, pool *x509.CertPool) (*minioServer, error) {
	bin := minioBinary()
	if bin == "" {
		return nil, errNoMinio
	}
	var lastErr error
	for range 3 {
		srv, err := launchMinio(bin, dataDir, certsDir, pool)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func launchMinio(bin, dataDir, certsDir string, pool *x509.CertPool) (*minioServer, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	cport, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if pool != nil {
		scheme = "https"
	}
	srv := &minioServer{
		Endpoint: fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		User:     testUser,
		Password: testPassword,
		done:     make(chan struct{}),
		out:      &lockedBuffer{},
	}
	// Always name a certs folder: MinIO's default (~/.minio/certs) would
	// turn on TLS for whoever has a certificate lying there.
	srv.cmd = exec.Command(bin, "server", dataDir,
		"--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport),
		"--certs-dir", certsDir, "--quiet")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") { // no stray settings from the caller's shell
			env = append(env, kv)
		}
	}
	srv.cmd.Env = append(env,
		"MINIO_ROOT_USER="+srv.User, "MINIO_ROOT_PASSWORD="+srv.Password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	// MinIO dies with the test binary even if cleanup never runs.
	srv.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { srv.cmd.Wait(); close(srv.done) }()

	tr := &http.Transport{}
	if pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(srv.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, nil
			}
		}
		select {
		case <-srv.done:
			return nil, fmt.Errorf("minio exited at start: %s", srv.out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv.stop()
	return nil, fmt.Errorf("minio not ready within 60s: %s", srv.out)
}

func (m *minioServer) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.done
	}
}

// errNoMinio says no binary was found: a skip (or, in CI, a failure), not
// a broken server.
var errNoMinio = errors.New("minio binary not found")

var shared struct {
	once sync.Once
	srv  *minioServer
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// testServer returns the endpoint and root credentials of the shared
// server, starting it on first use.
func testServer(t testing.TB) (endpoint, user, password string) {
	t.Helper()
	if v := os.Getenv(envTestS3); v != "" {
		u, err := url.Parse(v)
		if err != nil || u.User == nil {
			t.Fatalf("%s: want http://ACCESS:SECRET@host:port, got an unparsable value", envTestS3)
		}
		pw, _ := u.User.Password()
		return u.Scheme + "://" + u.Host, u.User.Username(), pw
	}
	shared.once.Do(func() {
		if minioBinary() == "" {
			shared.err = errNoMinio
			return
		}
		shared.dir, shared.err = os.MkdirTemp("", "lzminio")
		if shared.err != nil {
			return
		}
		certs := filepath.Join(shared.dir, "certs")
		if shared.err = os.MkdirAll(certs, 0o700); shared.err != nil {
			return
		}
		shared.srv, shared.err = startMinio(filepath.Join(shared.dir, "data"), certs, nil)
	})
	if shared.err != nil {
		if errors.Is(shared.err, errNoMinio) {
			testenv.Require(t, "MinIO ($"+envTestS3+", $"+envMinioBin+" or a minio binary)")
		}
		t.Fatalf("start minio: %v", shared.err)
	}
	return shared.srv.Endpoint, shared.srv.User, shared.srv.Password
}

// testConfig returns a Config for the shared server with the given
// effect settings.
func testConfig(t testing.TB, effects Config) Config {
	t.Helper()
	ep, user, pw := testServer(t)
	effects.Endpoint, effects.AccessKey, effects.SecretKey = ep, user, pw
	effects.PathStyle = true
	return effects
}

// newStore opens a Store on the shared server.
func newStore(t testing.TB, effects Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), testConfig(t, effects), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var bucketSeq atomic.Int64

// newBucket makes a bucket with a name unique in this run.
func newBucket(t testing.TB, s *Store, versioned bool) string {
	t.Helper()
	ctx := t.Context()
	name := fmt.Sprintf("lz-%d-%d", time.Now().UnixNano()%1e9, bucketSeq.Add(1))
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	if versioned {
		if err := s.client.EnableVersioning(ctx, name); err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
	return name
}

// put writes an object and returns its Info.
func put(t testing.TB, s *Store, bucket, key, body string, opts minio.PutObjectOptions) Info {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	if _, err := s.client.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), opts); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	info, err := s.Stat(ctx, bucket, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// objectTags returns an object's tags.
func objectTags(t testing.TB, s *Store, bucket, key, versionID string) map[string]string {
	t.Helper()
	tg, err := s.client.GetObjectTagging(t.Context(), bucket, key, minio.GetObjectTaggingOptions{VersionID: versionID})
	if err != nil {
		t.Fatalf("get tags of %s/%s: %v", bucket, key, err)
	}
	return tg.ToMap()
}
