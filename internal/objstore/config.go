package objstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/lazaret/lazaret/internal/redact"
)

// What Apply does with an infected object.
const (
	OnInfectedDelete     = "delete"     // delete it (bucket-av-scanner's DELETE_FILE=true)
	OnInfectedQuarantine = "quarantine" // move it to the quarantine bucket/prefix
	OnInfectedTag        = "tag"        // leave it, tagged
)

// Defaults for the tag names.
const (
	DefaultTagKey    = "lazaret-status"
	DefaultTagPrefix = "lazaret-"
)

// Config says how to reach the object store and what a scan's effects are.
// The zero value of each effect field is its documented default.
type Config struct {
	// Endpoint is a URL ("https://minio:9000", "http://127.0.0.1:9000"),
	// whose scheme decides TLS, or a bare "host:port" with Secure.
	Endpoint string
	// Secure turns on TLS for a bare host:port Endpoint.
	Secure bool
	// AccessKey and SecretKey are the credentials. SecretKey never
	// appears in String, GoString or LogValue.
	AccessKey string
	SecretKey string
	// Region is the bucket region; "" lets the client ask the server.
	Region string
	// PathStyle forces path-style requests (http://host/bucket/key), what
	// MinIO expects. False lets the client choose: virtual-host style for
	// AWS, path style for every other endpoint, so MinIO works either way.
	PathStyle bool
	// CAFile is a PEM file of extra trusted CAs, for servers with
	// private certificates.
	CAFile string
	// InsecureSkipVerify turns off certificate checks. For tests only.
	InsecureSkipVerify bool

	// DisableTags turns verdict tagging off (bucket-av-scanner's
	// TAG_FILES=false).
	DisableTags bool
	// TagKey names the status tag whose value is the verdict; default
	// DefaultTagKey. bucket-av-scanner's compatibility mode sets "scanned".
	TagKey string
	// TagPrefix prefixes lazaret's other tags ("signature",
	// "scanned-at"); default DefaultTagPrefix.
	TagPrefix string
	// TagPending makes TagPending tag objects "pending" when their event
	// arrives; off, TagPending does nothing.
	TagPending bool
	// OnInfected is OnInfectedDelete (default), OnInfectedQuarantine or
	// OnInfectedTag.
	OnInfected string
	// QuarantineBucket and QuarantinePrefix say where quarantined objects
	// go: QuarantineBucket/QuarantinePrefix+key. The bucket is required
	// with OnInfectedQuarantine.
	QuarantineBucket string
	QuarantinePrefix string
}

const redacted = "<secret>"

// String prints the configuration with the secret key redacted.
func (c Config) String() string {
	type plain Config // drops the methods, so %+v does not recurse
	p := plain(c)
	if p.SecretKey != "" {
		p.SecretKey = redacted
	}
	return fmt.Sprintf("objstore.Config%+v", p)
}

// GoString is String, so %#v cannot leak the secret either.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration with the secret key redacted.
func (c Config) LogValue() slog.Value {
	secret := ""
	if c.SecretKey != "" {
		secret = redacted
	}
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.Bool("secure", c.Secure),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", secret),
		slog.String("region", c.Region),
		slog.Bool("path_style", c.PathStyle),
		slog.String("ca_file", c.CAFile),
		slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
		slog.Bool("tags", !c.DisableTags),
		slog.String("tag_key", c.TagKey),
		slog.String("tag_prefix", c.TagPrefix),
		slog.Bool("tag_pending", c.TagPending),
		slog.String("on_infected", c.OnInfected),
		slog.String("quarantine_bucket", c.QuarantineBucket),
		slog.String("quarantine_prefix", c.QuarantinePrefix),
	)
}

// withDefaults fills the effect fields left empty.
func (c Config) withDefaults() Config {
	if c.TagKey == "" {
		c.TagKey = DefaultTagKey
	}
	if c.TagPrefix == "" {
		c.TagPrefix = DefaultTagPrefix
	}
	if c.OnInfected == "" {
		c.OnInfected = OnInfectedDelete
	}
	return c
}

// Excludes reports whether bucket/key lies where quarantined objects go,
// and so must never be scanned: a quarantine copy fires
// s3:ObjectCreated:Copy there, and scanning it would only find the same
// infection again (and, with OnInfected delete, destroy the evidence).
func (c Config) Excludes(bucket, key string) bool {
	return c.QuarantineBucket != "" && bucket == c.QuarantineBucket &&
		strings.HasPrefix(key, c.QuarantinePrefix)
}

// endpoint splits Endpoint into the host:port the client wants and
// whether to use TLS.
func (c Config) endpoint() (host string, secure bool, err error) {
	if c.Endpoint == "" {
		return "", false, errors.New("endpoint: required")
	}
	if !strings.Contains(c.Endpoint, "://") {
		if strings.ContainsAny(c.Endpoint, "/?#") {
			return "", false, fmt.Errorf("endpoint: %q is neither a URL nor host:port", c.Endpoint)
		}
		return c.Endpoint, c.Secure, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return "", false, fmt.Errorf("endpoint: %w", err)
	}
	switch u.Scheme {
	case "https":
		secure = true
	case "http":
	default:
		return "", false, fmt.Errorf("endpoint: scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", false, fmt.Errorf("endpoint: %q has no host", c.Endpoint)
	}
	// S3 clients address buckets below the root; a path here would be
	// silently ignored, so refuse it rather than surprise.
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("endpoint: %q: only scheme://host[:port] is allowed", redact.URL(c.Endpoint))
	}
	return u.Host, secure, nil
}

// validate checks the configuration after withDefaults; errors name the
// field.
func (c Config) validate() error {
	var errs []error
	if _, _, err := c.endpoint(); err != nil {
		errs = append(errs, err)
	}
	if c.AccessKey == "" && c.SecretKey != "" {
		errs = append(errs, errors.New("access_key: required with secret_key"))
	}
	switch c.OnInfected {
	case OnInfectedDelete, OnInfectedTag:
	case OnInfectedQuarantine:
		if c.QuarantineBucket == "" {
			errs = append(errs, errors.New("quarantine_bucket: required with on_infected: quarantine"))
		}
	default:
		errs = append(errs, fmt.Errorf("on_infected: %q, want delete, quarantine or tag", c.OnInfected))
	}
	for _, k := range []struct{ name, v string }{{"tag_key", c.TagKey}, {"tag_prefix", c.TagPrefix}} {
		if !validTagText(k.v) {
			errs = append(errs, fmt.Errorf("%s: %q: only letters, digits, spaces and + - = . _ : / @ are allowed", k.name, k.v))
		}
	}
	if len(c.TagPrefix+"scanned-at") > maxTagKeyLen || len(c.TagKey) > maxTagKeyLen {
		errs = append(errs, fmt.Errorf("tag_key/tag_prefix: tag keys are limited to %d characters", maxTagKeyLen))
	}
	return errors.Join(errs...)
}
