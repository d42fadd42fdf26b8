package objstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/testenv"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// as MinIO wants it (certsDir/public.crt, certsDir/private.key) and returns
// its pool and the certificate's path, which doubles as the CA file.
func selfSigned(t *testing.T, certsDir string) (*x509.CertPool, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "lazaret test MinIO"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(certsDir, "public.crt")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certsDir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, crt
}

func TestTLSWithCustomCA(t *testing.T) {
	t.Parallel()
	if minioBinary() == "" {
		// This test needs its own server (with a certificate), even when
		// LAZARET_TEST_S3 names a shared one.
		testenv.Require(t, "a minio binary ($"+envMinioBin+") for a TLS server")
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	pool, caFile := selfSigned(t, certs)
	srv, err := startMinio(filepath.Join(dir, "data"), certs, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s is not https", srv.Endpoint)
	}
	ctx := t.Context()
	base := Config{Endpoint: srv.Endpoint, AccessKey: srv.User, SecretKey: srv.Password, PathStyle: true, Region: "us-east-1"}

	withCA := base
	withCA.CAFile = caFile
	s, err := Open(ctx, withCA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.MakeBucket(ctx, "tls", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	info := put(t, s, "tls", "k", "over tls", minio.PutObjectOptions{})
	rc, _, err := s.Open(ctx, "tls", "k", "", info.ETag)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "over tls" {
		t.Errorf("got %q", b)
	}

	// Without the CA the certificate is refused; skipping verification
	// (tests only) gets through.
	untrusted, err := Open(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Stat(ctx, "tls", "k", ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: got %v, want a certificate error", err)
	}
	insecure := base
	insecure.InsecureSkipVerify = true
	s2, err := Open(ctx, insecure, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Stat(ctx, "tls", "k", ""); err != nil {
		t.Errorf("insecure: %v", err)
	}
}
