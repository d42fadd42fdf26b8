package objstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// kindError is a sentinel that also matches a standard error, so callers
// that only know io/fs can classify it.
type kindError struct {
	msg string
	std error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.std }

// Sentinel errors callers branch on; returned errors wrap them.
var (
	// ErrNotFound: the bucket, object or version does not exist (any
	// more). It matches fs.ErrNotExist too.
	ErrNotFound error = &kindError{"object not found", fs.ErrNotExist}
	// ErrChanged: the object's current ETag or version is not the one the
	// caller expected; it was replaced after its event.
	ErrChanged = errors.New("object changed")
	// ErrAccessDenied: the credentials are wrong or lack the permission.
	// It matches fs.ErrPermission too.
	ErrAccessDenied error = &kindError{"access denied", fs.ErrPermission}
)

// Store is a client for one S3 endpoint with the effect settings of a
// Config. It is safe for concurrent use.
type Store struct {
	client *minio.Client
	core   minio.Core // the same client's lower-level calls (an eager GET)
	cfg    Config
	log    *slog.Logger
	tr     http.RoundTripper
	// maxSingleCopy is maxSingleCopy, lowered by a test to take the
	// multipart copy path with a small object.
	maxSingleCopy int64
}

// Open returns a Store for cfg. It checks the configuration and reads
// CAFile but makes no request: an unreachable server or wrong credentials
// show at the first call (see Ping).
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("objstore: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, secure, _ := cfg.endpoint()
	tr, err := transport(cfg, secure)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
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
		// minio-go retries 10 times by default with backoff, which turns a
		// dead server into a minute-long stall; the queue redelivers
		// anyway, so a few quick tries are enough.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: client: %w", err)
	}
	logger.DebugContext(ctx, "object store configured", "config", cfg)
	return &Store{client: client, core: minio.Core{Client: client}, cfg: cfg, log: logger, tr: tr, maxSingleCopy: maxSingleCopy}, nil
}

// transport builds the HTTP transport with the configured trust.
func transport(cfg Config, secure bool) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	if !secure {
		return tr, nil
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.TLSClientConfig.InsecureSkipVerify = cfg.InsecureSkipVerify //nolint:gosec // an explicit, documented opt-in
	return tr, nil
}

// Close releases the Store's idle connections. Calls in flight finish;
// the Store stays usable and would open new connections.
func (s *Store) Close() error {
	if t, ok := s.tr.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// Client returns the underlying minio-go client, for calls the Store does
// not wrap (listing a bucket for a sweep), with the same endpoint, trust
// and credentials.
func (s *Store) Client() *minio.Client { return s.client }

// Config returns the configuration in use, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Ping checks that bucket exists and the credentials may see it, for
// readiness checks.
func (s *Store) Ping(ctx context.Context, bucket string) error {
	ok, err := s.client.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("objstore: ping %s: %w", bucket, classify(err))
	}
	if !ok {
		return fmt.Errorf("objstore: ping %s: bucket %w", bucket, ErrNotFound)
	}
	return nil
}

// Info describes an object.
type Info struct {
	Bucket, Key string
	Size        int64
	// ETag is the entity tag without quotes, in lower case (the form
	// s3event gives events).
	ETag string
	// VersionID is "" for objects of unversioned buckets.
	VersionID   string
	ContentType string
	// Metadata is the user metadata (x-amz-meta-*), keys without the
	// prefix in canonical header form ("Origin").
	Metadata     map[string]string
	LastModified time.Time
	// TagCount is the number of tags, when the server reports it.
	TagCount int
}

// Check returns an error wrapping ErrChanged when the object is not the one
// named by etag and versionID; an empty etag or versionID matches anything.
func (i Info) Check(etag, versionID string) error {
	if etag != "" && normalizeETag(etag) != i.ETag {
		return fmt.Errorf("%w: etag is %s, want %s", ErrChanged, i.ETag, normalizeETag(etag))
	}
	if versionID != "" && !sameVersion(versionID, i.VersionID) {
		return fmt.Errorf("%w: version is %q, want %q", ErrChanged, i.VersionID, versionID)
	}
	return nil
}

// sameVersion compares version IDs, with S3's "null" (an object written
// while versioning was off) equal to none.
func sameVersion(a, b string) bool {
	if a == "null" {
		a = ""
	}
	if b == "null" {
		b = ""
	}
	return a == b
}

func normalizeETag(s string) string {
	return strings.ToLower(strings.Trim(s, `"`))
}

func infoFrom(bucket string, oi minio.ObjectInfo) Info {
	md := make(map[string]string, len(oi.UserMetadata))
	for k, v := range oi.UserMetadata {
		md[k] = v
	}
	return Info{
		Bucket:       bucket,
		Key:          oi.Key,
		Size:         oi.Size,
		ETag:         normalizeETag(oi.ETag),
		VersionID:    oi.VersionID,
		ContentType:  oi.ContentType,
		Metadata:     md,
		LastModified: oi.LastModified,
		TagCount:     oi.UserTagCount,
	}
}

// Stat returns an object's description; versionID "" means the current
// version.
func (s *Store) Stat(ctx context.Context, bucket, key, versionID string) (Info, error) {
	oi, err := s.client.StatObject(ctx, bucket, key, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return Info{}, fmt.Errorf("objstore: stat %s/%s: %w", bucket, key, classify(err))
	}
	info := infoFrom(bucket, oi)
	info.Key = key
	return info, nil
}

// Open streams an object. With versionID it reads that version; with etag
// the read succeeds only if the object still has that ETag, else it fails
// with ErrChanged. The reader must be closed; a stream cut short ends in an
// error, never in a silent EOF.
func (s *Store) Open(ctx context.Context, bucket, key, versionID, etag string) (io.ReadCloser, Info, error) {
	opts := minio.GetObjectOptions{VersionID: versionID}
	if etag != "" {
		// If-Match makes the check and the read one atomic request: no
		// window in which a new upload could slip in between.
		if err := opts.SetMatchETag(normalizeETag(etag)); err != nil {
			return nil, Info{}, fmt.Errorf("objstore: open %s/%s: %w", bucket, key, err)
		}
	}
	// Core's GET is eager (the plain client's is lazy), so a missing or
	// changed object fails here, before anyone starts scanning.
	rc, oi, _, err := s.core.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return nil, Info{}, fmt.Errorf("objstore: open %s/%s: %w", bucket, key, classify(err))
	}
	info := infoFrom(bucket, oi)
	info.Key = key
	// Defence in depth against S3 clones that ignore If-Match or
	// versionId: check what the server says it sent.
	if err := info.Check(etag, versionID); err != nil {
		rc.Close()
		return nil, Info{}, fmt.Errorf("objstore: open %s/%s: %w", bucket, key, err)
	}
	return rc, info, nil
}

// classify wraps an S3 error with the sentinel it means, keeping the
// server's message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	switch er.Code {
	case "NoSuchKey", "NoSuchVersion", "NoSuchBucket":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case "PreconditionFailed":
		return fmt.Errorf("%w: %w", ErrChanged, err)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	// HEAD answers carry no body, so only the status says what happened.
	switch er.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case http.StatusPreconditionFailed:
		return fmt.Errorf("%w: %w", ErrChanged, err)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	return err
}
