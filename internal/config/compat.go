package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// bucket-av-scanner compatibility: that project's deployments configure
// it with these variables, and switch to lazaret without renaming them.
// Each keeps its meaning there:
//
//	MINIO_SERVER_URL, MINIO_ENDPOINT      the S3 endpoint (URL, or host with https and :9000)
//	MINIO_USER_NAME, MINIO_USER_PASSWORD  S3 credentials (the regular, non-admin user)
//	MINIO_BUCKET_NAME, MINIO_REGION       the bucket to scan (default storagebucket), its region (default eu-west-1)
//	RABBITMQ_ENDPOINT                     RabbitMQ host; AMQP on port 5672 (RABBITMQ_PORT is the management port there)
//	RABBITMQ_REGULAR_USER_NAME/_PASS      AMQP credentials
//	RABBITMQ_QUEUE_NAME                   queue of MinIO's events (default s3minioqueue)
//	RABBITMQ_QUEUE_ROUTING_KEY            binding key (default bucket_notifications)
//	RABBITMQ_TOPIC                        topic exchange (default s3minioscan)
//	CLAMD_ENDPOINT, CLAMD_PORT            a clamd engine named clamav (clamd's own port, 3310 by default)
//	DELETE_FILE                           delete infected objects (default true; false = tag only)
//	TAG_FILES, TAG_KEY                    tag scanned objects (default true), status tag name (default scanned)
//	VOLUME_SIZE                           largest object scanned, in GB (default 2)
//	REPORT_CLEAN, PUBLISH_URL             webhook receiving results; clean ones only with REPORT_CLEAN=true
//
// LAZARET_AMQP_PORT overrides the AMQP port. The mode is on when any of
// MINIO_SERVER_URL, MINIO_ENDPOINT, RABBITMQ_ENDPOINT or CLAMD_ENDPOINT
// is set.
func applyBucketAVScanner(cfg *Config, getenv func(string) string) error {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	boolean := func(name string, def bool) (bool, error) {
		v := env(name, "")
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("config: %s: %q is not true or false", name, v)
		}
		return b, nil
	}
	if env("MINIO_SERVER_URL", "") == "" && env("MINIO_ENDPOINT", "") == "" &&
		env("RABBITMQ_ENDPOINT", "") == "" && env("CLAMD_ENDPOINT", "") == "" {
		return nil
	}

	if u := env("MINIO_SERVER_URL", ""); u != "" {
		cfg.S3.Endpoint = u
	} else if h := env("MINIO_ENDPOINT", ""); h != "" {
		cfg.S3.Endpoint = "https://" + net.JoinHostPort(h, "9000")
	}
	if cfg.S3.Endpoint != "" {
		cfg.S3.AccessKey = env("MINIO_USER_NAME", cfg.S3.AccessKey)
		if v := env("MINIO_USER_PASSWORD", ""); v != "" {
			cfg.S3.SecretKey = Secret(v)
		}
		cfg.S3.Region = env("MINIO_REGION", "eu-west-1")
		cfg.Buckets = []Bucket{{Name: env("MINIO_BUCKET_NAME", "storagebucket")}}
	}

	if h := env("RABBITMQ_ENDPOINT", ""); h != "" {
		port := env("LAZARET_AMQP_PORT", "5672")
		u := url.URL{Scheme: "amqp", Host: net.JoinHostPort(h, port), Path: "/"}
		if user := env("RABBITMQ_REGULAR_USER_NAME", ""); user != "" {
			u.User = url.UserPassword(user, env("RABBITMQ_REGULAR_USER_PASS", ""))
		}
		cfg.Events.AMQP = &AMQPEvents{
			URL:        Secret(u.String()),
			Queue:      env("RABBITMQ_QUEUE_NAME", "s3minioqueue"),
			Exchange:   env("RABBITMQ_TOPIC", "s3minioscan"),
			RoutingKey: env("RABBITMQ_QUEUE_ROUTING_KEY", "bucket_notifications"),
		}
	}

	if h := env("CLAMD_ENDPOINT", ""); h != "" {
		addr := "tcp://" + net.JoinHostPort(h, env("CLAMD_PORT", "3310"))
		cfg.Engines = append(cfg.Engines, Engine{Name: "clamav", Type: TypeClamd, Address: addr})
	}

	del, err := boolean("DELETE_FILE", true)
	if err != nil {
		return err
	}
	if del {
		cfg.Effects.OnInfected = "delete"
	} else {
		cfg.Effects.OnInfected = "tag"
	}
	if cfg.Effects.Tag, err = boolean("TAG_FILES", true); err != nil {
		return err
	}
	cfg.Effects.TagKey = env("TAG_KEY", "scanned")
	gb, err := strconv.ParseFloat(env("VOLUME_SIZE", "2"), 64)
	if err != nil || gb <= 0 {
		return fmt.Errorf("config: VOLUME_SIZE: %q is not a size in GB", getenv("VOLUME_SIZE"))
	}
	cfg.Limits.MaxSize = ByteSize(gb * (1 << 30))
	reportClean, err := boolean("REPORT_CLEAN", false)
	if err != nil {
		return err
	}
	if u := env("PUBLISH_URL", ""); u != "" {
		cfg.Notify.Webhooks = append(cfg.Notify.Webhooks, Webhook{URL: Secret(u), ReportClean: reportClean})
	}
	return nil
}
