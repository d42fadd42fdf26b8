package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvMinIOBin names the MinIO server binary (built from the Go module
// proxy; see INFRA.md). Without it, `minio` on PATH and ~/go/bin/minio
// are tried.
const EnvMinIOBin = "LAZARET_MINIO_BIN"

// EnvS3 names a running S3 server for the tests that can share one
// (SharedMinIO): http://ACCESS:SECRET@127.0.0.1:9000.
const EnvS3 = "LAZARET_TEST_S3"

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
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// MinIOOptions configures a MinIO server.
type MinIOOptions struct {
	// Env adds environment variables (MINIO_NOTIFY_* targets, say).
	Env map[string]string
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1 and
	// localhost, which MinIO.CAFile holds.
	TLS bool
}

// MinIO is a MinIO server for tests.
type MinIO struct {
	// Endpoint is "http://127.0.0.1:PORT", or https:// with TLS.
	Endpoint       string
	User, Password string
	// CAFile is the PEM file of a TLS server's certificate, which is
	// its own CA; "" without TLS.
	CAFile string
	// RootCAs trusts that certificate; nil without TLS.
	RootCAs *x509.CertPool

	dir  string // data and certificates; removed by Stop
	cmd  *exec.Cmd
	done chan struct{}
	out  *Buffer // the start of the server's output, where start-up failures show
}

// StartMinIO starts a MinIO server on 127.0.0.1 with a fresh data folder
// and extra environment (MINIO_NOTIFY_* targets, say); it stops at
// cleanup. It skips the test without a binary, unless CI is set.
func StartMinIO(t testing.TB, env map[string]string) *MinIO {
	t.Helper()
	return StartMinIOWith(t, MinIOOptions{Env: env})
}

// StartMinIOWith is StartMinIO with every option: use it for a server of
// one test's own, with TLS say.
func StartMinIOWith(t testing.TB, opts MinIOOptions) *MinIO {
	t.Helper()
	if MinIOBinary() == "" {
		Require(t, "a MinIO server binary ($"+EnvMinIOBin+")")
	}
	m, err := LaunchMinIO(opts)
	if err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(m.Stop)
	return m
}

var sharedMinIO struct {
	once sync.Once
	m    *MinIO
	err  error
}

// SharedMinIO returns the server that every test of the test binary may
// share: the one $LAZARET_TEST_S3 names, else a MinIO started on first
// use. Tests that share it make buckets of their own, so they run in
// parallel and against an external server alike. A package that uses it
// calls StopSharedMinIO from TestMain once its tests ran.
func SharedMinIO(t testing.TB) *MinIO {
	t.Helper()
	if v := os.Getenv(EnvS3); v != "" {
		u, err := url.Parse(v)
		if err != nil || u.User == nil || u.Host == "" {
			// Not %v of err: it would print the secret.
			t.Fatalf("%s: want http://ACCESS:SECRET@host:port, got an unparsable value", EnvS3)
		}
		pw, _ := u.User.Password()
		return &MinIO{Endpoint: u.Scheme + "://" + u.Host, User: u.User.Username(), Password: pw}
	}
	if MinIOBinary() == "" {
		Require(t, "MinIO ($"+EnvS3+", $"+EnvMinIOBin+" or a minio binary)")
	}
	sharedMinIO.once.Do(func() { sharedMinIO.m, sharedMinIO.err = LaunchMinIO(MinIOOptions{}) })
	if sharedMinIO.err != nil {
		t.Fatalf("start minio: %v", sharedMinIO.err)
	}
	return sharedMinIO.m
}

// StopSharedMinIO stops the MinIO that SharedMinIO started, if any, and
// removes its data. Call it from TestMain after m.Run.
func StopSharedMinIO() {
	if sharedMinIO.m != nil {
		sharedMinIO.m.Stop()
	}
}

// LaunchMinIO starts a MinIO server outside a test (for a server shared
// by a test binary, or a benchmark); the caller must Stop it. A port
// taken by someone else between choosing and binding is retried.
func LaunchMinIO(opts MinIOOptions) (*MinIO, error) {
	bin := MinIOBinary()
	if bin == "" {
		return nil, errors.New("minio: no binary ($" + EnvMinIOBin + ", minio on PATH or ~/go/bin/minio)")
	}
	var errs []error
	for range 3 {
		m, err := launchMinIO(bin, opts)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func launchMinIO(bin string, opts MinIOOptions) (_ *MinIO, err error) {
	dir, err := os.MkdirTemp("", "lzminio")
	if err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	m := &MinIO{User: "lazaret-admin", Password: "lazaret-secret-0123", dir: dir, done: make(chan struct{}), out: &Buffer{Max: 1 << 20}}
	defer func() {
		if err != nil {
			m.Stop()
		}
	}()
	// Always a certs folder of its own: MinIO's default, ~/.minio/certs,
	// would turn on TLS for whoever has a certificate lying there.
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	scheme := "http"
	if opts.TLS {
		if m.RootCAs, err = writeSelfSigned(certs); err != nil {
			return nil, fmt.Errorf("minio: certificate: %w", err)
		}
		m.CAFile = filepath.Join(certs, "public.crt")
		scheme = "https"
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	cport, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	m.Endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	m.cmd = exec.Command(bin, "server", filepath.Join(dir, "data"), "--quiet", "--certs-dir", certs,
		"--address", fmt.Sprintf("127.0.0.1:%d", port), "--console-address", fmt.Sprintf("127.0.0.1:%d", cport))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") { // no stray settings from the caller's shell
			m.cmd.Env = append(m.cmd.Env, kv)
		}
	}
	m.cmd.Env = append(m.cmd.Env, "MINIO_ROOT_USER="+m.User, "MINIO_ROOT_PASSWORD="+m.Password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	for k, v := range opts.Env {
		m.cmd.Env = append(m.cmd.Env, k+"="+v)
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	// MinIO dies with the test binary even if cleanup never runs.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()

	tr := &http.Transport{}
	if m.RootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: m.RootCAs}
	}
	defer tr.CloseIdleConnections()
	// A timeout per request: a server that accepts and never answers
	// must not hang the tests.
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(m.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("minio exited at start: %s", m.out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("minio not ready within 60s: %s", m.out)
}

// Stop kills MinIO and removes its data; calling it again does nothing
// more. A server that LAZARET_TEST_S3 named is left alone.
func (m *MinIO) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.done
	}
	if m.dir != "" {
		os.RemoveAll(m.dir)
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost where MinIO looks for it (certsDir/public.crt and
// certsDir/private.key) and returns a pool that trusts it.
func writeSelfSigned(certsDir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "lazaret test MinIO"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // it is its own CA, so CAFile can be the certificate
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certsDir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certsDir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}
