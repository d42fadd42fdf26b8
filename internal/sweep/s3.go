package sweep

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lazaret/lazaret/internal/objstore"
)

// Object is one listed object.
type Object struct {
	Key  string
	Size int64
	// ETag is as the server lists it; JobID and objstore normalise it.
	ETag string
	// VersionID is "" in a listing without versions (the current one).
	VersionID    string
	LastModified time.Time
}

// Lister lists a bucket's objects under a prefix, recursively, calling fn
// for each in turn; an error from fn stops the listing and is returned.
type Lister interface {
	List(ctx context.Context, bucket, prefix string, fn func(Object) error) error
}

// TagReader reads an object's tags, for Config.UntaggedOnly. An object
// that is gone fails with an error wrapping objstore.ErrNotFound.
type TagReader interface {
	Tags(ctx context.Context, bucket, key, versionID string) (map[string]string, error)
}

// S3Lister is the Lister and TagReader over an S3 or MinIO server. It is
// safe for concurrent use.
type S3Lister struct {
	client *minio.Client
}

var (
	_ Lister    = (*S3Lister)(nil)
	_ TagReader = (*S3Lister)(nil)
)

// NewS3Lister returns an S3Lister for the connection settings of cfg
// (Endpoint, Secure, credentials, Region, PathStyle, CAFile,
// InsecureSkipVerify): the same configuration that objstore.Open takes, so
// that the listing and the reads go to the same server with the same
// trust. The effect settings are ignored. No request is made.
func NewS3Lister(cfg objstore.Config) (*S3Lister, error) {
	host, secure, err := splitEndpoint(cfg.Endpoint, cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("sweep: s3: %w", err)
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("sweep: s3: transport: %w", err)
	}
	if secure {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("sweep: s3: ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("sweep: s3: ca_file: %s holds no PEM certificate", cfg.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.TLSClientConfig.InsecureSkipVerify = cfg.InsecureSkipVerify //nolint:gosec // an explicit, documented opt-in
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// As objstore: a few quick retries, not minio-go's minute of them.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("sweep: s3: client: %w", err)
	}
	return &S3Lister{client: client}, nil
}

// NewS3ListerClient returns an S3Lister over an existing client.
func NewS3ListerClient(c *minio.Client) *S3Lister { return &S3Lister{client: c} }

// splitEndpoint reads objstore.Config's Endpoint forms: a URL whose scheme
// decides TLS, or a bare host:port with secure.
func splitEndpoint(endpoint string, secure bool) (string, bool, error) {
	if endpoint == "" {
		return "", false, errors.New("endpoint: required")
	}
	if !strings.Contains(endpoint, "://") {
		if strings.ContainsAny(endpoint, "/?#") {
			return "", false, fmt.Errorf("endpoint: %q is neither a URL nor host:port", endpoint)
		}
		return endpoint, secure, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("endpoint: %w", err)
	}
	switch u.Scheme {
	case "https":
		secure = true
	case "http":
		secure = false
	default:
		return "", false, fmt.Errorf("endpoint: scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("endpoint: %q: only scheme://host[:port] is allowed", u.Redacted())
	}
	return u.Host, secure, nil
}

// List lists the current version of every object under prefix (ListObjects
// V2, recursive, without versions). Directory markers, zero-byte keys
// ending in "/" that consoles create for folders, are listed too; Run
// leaves them out.
func (l *S3Lister) List(ctx context.Context, bucket, prefix string, fn func(Object) error) error {
	opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true}
	// The iterator form stops its requests as soon as the loop ends, so an
	// error from fn leaks no goroutine.
	for oi := range l.client.ListObjectsIter(ctx, bucket, opts) {
		if oi.Err != nil {
			return fmt.Errorf("sweep: list s3://%s/%s: %w", bucket, prefix, classify(oi.Err))
		}
		if err := fn(Object{Key: oi.Key, Size: oi.Size, ETag: oi.ETag, VersionID: oi.VersionID, LastModified: oi.LastModified}); err != nil {
			return err
		}
	}
	// The iterator ends quietly when ctx ends; say so.
	return ctx.Err()
}

// Tags returns an object's tags.
func (l *S3Lister) Tags(ctx context.Context, bucket, key, versionID string) (map[string]string, error) {
	t, err := l.client.GetObjectTagging(ctx, bucket, key, minio.GetObjectTaggingOptions{VersionID: versionID})
	if err != nil {
		return nil, fmt.Errorf("sweep: get tags %s/%s: %w", bucket, key, classify(err))
	}
	return t.ToMap(), nil
}

// classify wraps the S3 errors Run branches on with objstore's sentinels,
// so that one set of sentinels serves the listing, the tags and the reads.
func classify(err error) error {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	switch {
	case er.Code == "NoSuchKey" || er.Code == "NoSuchVersion" || er.Code == "NoSuchBucket" || er.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", objstore.ErrNotFound, err)
	case er.Code == "AccessDenied" || er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch" || er.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", objstore.ErrAccessDenied, err)
	}
	return err
}
