package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestBucketAVScannerEnv(t *testing.T) {
	env := map[string]string{
		"MINIO_SERVER_URL":           "https://minio:9000",
		"MINIO_USER_NAME":            "miniouser",
		"MINIO_USER_PASSWORD":        "miniopass123",
		"MINIO_BUCKET_NAME":          "uploads",
		"RABBITMQ_ENDPOINT":          "mq",
		"RABBITMQ_PORT":              "15672",
		"RABBITMQ_REGULAR_USER_NAME": "rabbituser",
		"RABBITMQ_REGULAR_USER_PASS": "rabbit/pass",
		"RABBITMQ_QUEUE_NAME":        "s3minioqueue",
		"CLAMD_ENDPOINT":             "clamd",
		"CLAMD_PORT":                 "3310",
		"DELETE_FILE":                "true",
		"TAG_FILES":                  "true",
		"VOLUME_SIZE":                "1",
		"PUBLISH_URL":                "https://hooks.example/av",
	}
	cfg, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"s3 endpoint", cfg.S3.Endpoint, "https://minio:9000"},
		{"s3 user", cfg.S3.AccessKey, "miniouser"},
		{"s3 region default", cfg.S3.Region, "eu-west-1"},
		{"bucket", cfg.Buckets[0].Name, "uploads"},
		{"amqp url (port 5672, not the management port)", cfg.Events.AMQP.URL.Reveal(), "amqp://rabbituser:rabbit%2Fpass@mq:5672/"},
		{"amqp queue", cfg.Events.AMQP.Queue, "s3minioqueue"},
		{"amqp exchange default", cfg.Events.AMQP.Exchange, "s3minioscan"},
		{"amqp routing key default", cfg.Events.AMQP.RoutingKey, "bucket_notifications"},
		{"clamd engine", cfg.Engines[0].Address, "tcp://clamd:3310"},
		{"one engine: clamd replaces the builtin default", len(cfg.Engines), 1},
		{"on infected", cfg.Effects.OnInfected, "delete"},
		{"tag key default in this mode", cfg.Effects.TagKey, "scanned"},
		{"max size from VOLUME_SIZE", int64(cfg.Limits.MaxSize), int64(1 << 30)},
		{"webhook", cfg.Notify.Webhooks[0].URL.Reveal(), "https://hooks.example/av"},
		{"report clean default", cfg.Notify.Webhooks[0].ReportClean, false},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if s := fmt.Sprintf("%v %v", cfg.S3.SecretKey, cfg.Events.AMQP.URL); strings.Contains(s, "pass") {
		t.Errorf("secrets printed: %s", s)
	}
}

func TestBucketAVScannerEnvVariants(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(Config) string
	}{
		{"DELETE_FILE=false tags only", map[string]string{"MINIO_ENDPOINT": "minio", "DELETE_FILE": "false"},
			func(c Config) string { return c.Effects.OnInfected + " " + c.S3.Endpoint }},
		{"TAG_KEY and REPORT_CLEAN", map[string]string{"CLAMD_ENDPOINT": "c", "TAG_KEY": "avscan", "REPORT_CLEAN": "true", "PUBLISH_URL": "http://h/x"},
			func(c Config) string { return fmt.Sprint(c.Effects.TagKey, " ", c.Notify.Webhooks[0].ReportClean) }},
		{"not in that mode: lazaret's tag key", map[string]string{}, func(c Config) string { return c.Effects.TagKey }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			got := tc.check(cfg)
			want := map[string]string{
				"DELETE_FILE=false tags only":         "tag https://minio:9000",
				"TAG_KEY and REPORT_CLEAN":            "avscan true",
				"not in that mode: lazaret's tag key": "lazaret-status",
			}[tc.name]
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	for _, bad := range []map[string]string{
		{"CLAMD_ENDPOINT": "c", "DELETE_FILE": "maybe"},
		{"CLAMD_ENDPOINT": "c", "VOLUME_SIZE": "lots"},
	} {
		if _, err := Load("", func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v: got no error", bad)
		}
	}
}
