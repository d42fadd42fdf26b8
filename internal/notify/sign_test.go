package notify

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSignKnownVector(t *testing.T) {
	// RFC 4231, test case 2.
	s := NewSigner("Jefe")
	got := s.Sign([]byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cr3t")
	body := []byte(`{"event":"scan.completed","id":"j1"}`)
	good := NewSigner(string(secret)).Sign(body)
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   bool
	}{
		{"valid", secret, body, good, true},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"surrounding space", secret, body, " " + good + " ", true},
		{"wrong secret", []byte("other"), body, good, false},
		{"tampered body", secret, append(bytes.Clone(body), ' '), good, false},
		{"empty secret", nil, body, good, false},
		{"no prefix", secret, body, strings.TrimPrefix(good, "sha256="), false},
		{"other algorithm", secret, body, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", secret, body, "sha256=zz" + good[9:], false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"empty", secret, body, "", false},
		{"prefix only", secret, body, "sha256=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.secret, tt.body, tt.header); got != tt.want {
				t.Errorf("Verify = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestSignerWithoutSecret(t *testing.T) {
	var s Signer
	if s.Enabled() || s.Sign([]byte("x")) != "" {
		t.Errorf("zero Signer: Enabled %t, Sign %q; want false, empty", s.Enabled(), s.Sign([]byte("x")))
	}
	if NewSigner("").Enabled() {
		t.Error(`NewSigner("").Enabled() = true, want false`)
	}
}

// TestSecretNeverPrinted prints a Signer and a WebhookConfig every way a
// careless log line might.
func TestSecretNeverPrinted(t *testing.T) {
	const secret = "hunter2-very-secret"
	s := NewSigner(secret)
	cfg := WebhookConfig{Secret: secret, Timeout: 1}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "signer", s, "cfg", cfg)
	log.Info("y", "signer", &s, "cfg", &cfg)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s %v %+v %#v %s", s, s, s, s, cfg, cfg, cfg, cfg)
	if strings.Contains(out, secret) {
		t.Errorf("secret printed: %s", out)
	}
	if !strings.Contains(out, "<secret>") {
		t.Errorf("output does not say <secret>: %s", out)
	}
}
