package objstore

import (
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/testenv"
)

func TestTLSWithCustomCA(t *testing.T) {
	t.Parallel()
	// A server of its own, with a certificate, even when LAZARET_TEST_S3
	// names a shared one.
	srv := testenv.StartMinIOWith(t, testenv.MinIOOptions{TLS: true})
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s is not https", srv.Endpoint)
	}
	ctx := t.Context()
	base := Config{Endpoint: srv.Endpoint, AccessKey: srv.User, SecretKey: srv.Password, PathStyle: true, Region: "us-east-1"}

	withCA := base
	withCA.CAFile = srv.CAFile
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
