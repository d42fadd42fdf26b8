package objstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigRedactsSecret(t *testing.T) {
	const secret = "s3cr3t-value"
	c := Config{Endpoint: "http://127.0.0.1:9000", AccessKey: "user", SecretKey: secret}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "s3", c)
	for name, out := range map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"%v ptr":   fmt.Sprintf("%v", &c),
		"LogValue": logged.String(),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
		if !strings.Contains(out, "<secret>") || !strings.Contains(out, "user") {
			t.Errorf("%s: got %s, want the access key and <secret>", name, out)
		}
	}
}

func TestConfigEndpoint(t *testing.T) {
	tests := []struct {
		endpoint   string
		secureFlag bool
		host       string
		secure     bool
		bad        bool
	}{
		{"https://minio-service:9000", false, "minio-service:9000", true, false},
		{"http://127.0.0.1:9000", true, "127.0.0.1:9000", false, false},
		{"http://127.0.0.1:9000/", false, "127.0.0.1:9000", false, false},
		{"127.0.0.1:9000", false, "127.0.0.1:9000", false, false},
		{"minio:9000", true, "minio:9000", true, false},
		{"s3.amazonaws.com", true, "s3.amazonaws.com", true, false},
		{"", false, "", false, true},
		{"ftp://host:21", false, "", false, true},
		{"https://host:9000/bucket", false, "", false, true},
		{"https://user:pw@host:9000", false, "", false, true},
		{"https://", false, "", false, true},
		{"host:9000/bucket", false, "", false, true},
	}
	for _, tt := range tests {
		host, secure, err := Config{Endpoint: tt.endpoint, Secure: tt.secureFlag}.endpoint()
		if tt.bad {
			if err == nil {
				t.Errorf("%q: got host %q, want an error", tt.endpoint, host)
			}
			continue
		}
		if err != nil || host != tt.host || secure != tt.secure {
			t.Errorf("%q: got %q, %v, %v; want %q, %v", tt.endpoint, host, secure, err, tt.host, tt.secure)
		}
	}
}

func TestOpenValidates(t *testing.T) {
	ok := Config{Endpoint: "http://127.0.0.1:9000", AccessKey: "a", SecretKey: "b"}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // the field the error must name; "" for no error
	}{
		{"defaults", func(*Config) {}, ""},
		{"quarantine", func(c *Config) { c.OnInfected, c.QuarantineBucket = OnInfectedQuarantine, "q" }, ""},
		{"quarantine without bucket", func(c *Config) { c.OnInfected = OnInfectedQuarantine }, "quarantine_bucket"},
		{"unknown action", func(c *Config) { c.OnInfected = "shred" }, "on_infected"},
		{"bad tag key", func(c *Config) { c.TagKey = "status!" }, "tag_key"},
		{"bad tag prefix", func(c *Config) { c.TagPrefix = "lz#" }, "tag_prefix"},
		{"long tag key", func(c *Config) { c.TagKey = strings.Repeat("k", 129) }, "tag_key"},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint"},
		{"secret without key", func(c *Config) { c.AccessKey = "" }, "access_key"},
		{"missing CA file", func(c *Config) { c.Endpoint, c.CAFile = "https://h:9000", "/nonexistent/ca.pem" }, "ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			s, err := Open(context.Background(), c, nil)
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.field != "" && err == nil:
				t.Fatalf("got no error, want one naming %s", tt.field)
			case tt.field != "" && !strings.Contains(err.Error(), tt.field):
				t.Fatalf("got %v, want it to name %s", err, tt.field)
			}
			if err == nil {
				if got := s.Config(); got.TagKey != DefaultTagKey || got.TagPrefix != DefaultTagPrefix || got.OnInfected == "" {
					t.Errorf("defaults not applied: %v", got)
				}
			}
		})
	}
}

func TestExcludes(t *testing.T) {
	c := Config{QuarantineBucket: "uploads", QuarantinePrefix: "quarantine/"}
	for _, tt := range []struct {
		bucket, key string
		want        bool
	}{
		{"uploads", "quarantine/a.exe", true},
		{"uploads", "incoming/a.exe", false},
		{"other", "quarantine/a.exe", false},
	} {
		if got := c.Excludes(tt.bucket, tt.key); got != tt.want {
			t.Errorf("Excludes(%q, %q) = %v, want %v", tt.bucket, tt.key, got, tt.want)
		}
	}
	if (Config{}).Excludes("uploads", "x") {
		t.Error("no quarantine bucket excludes something")
	}
	if !(Config{QuarantineBucket: "q"}).Excludes("q", "anything") {
		t.Error("a dedicated quarantine bucket is not excluded")
	}
}
