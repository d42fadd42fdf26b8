package testenv

import (
	"os"
	"strings"
	"testing"
)

// TestSharedMinIOFromEnv: a server named by LAZARET_TEST_S3 is used as it
// is, nothing started.
func TestSharedMinIOFromEnv(t *testing.T) {
	t.Setenv(EnvS3, "http://access:secret@127.0.0.1:9")
	m := SharedMinIO(t)
	if m.Endpoint != "http://127.0.0.1:9" || m.User != "access" || m.Password != "secret" {
		t.Errorf("got %s %s %s, want http://127.0.0.1:9 access secret", m.Endpoint, m.User, m.Password)
	}
	if m.cmd != nil || m.dir != "" {
		t.Error("a server was started")
	}
	m.Stop() // leaves an external server alone
}

// TestStartMinIOWithTLS: a TLS server answers over HTTPS with the
// certificate in CAFile, and its folder goes when it stops.
func TestStartMinIOWithTLS(t *testing.T) {
	m := StartMinIOWith(t, MinIOOptions{TLS: true})
	if !strings.HasPrefix(m.Endpoint, "https://") || m.RootCAs == nil {
		t.Fatalf("endpoint %s, RootCAs %v; want https and a pool", m.Endpoint, m.RootCAs)
	}
	if b, err := os.ReadFile(m.CAFile); err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Errorf("CAFile %s: %v", m.CAFile, err)
	}
	m.Stop()
	if _, err := os.Stat(m.dir); !os.IsNotExist(err) {
		t.Errorf("folder %s left after Stop: %v", m.dir, err)
	}
}
