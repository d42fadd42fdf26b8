package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

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

// NewS3Lister returns an S3Lister over the object store's client, so the
// listing and the reads go to the same server with the same trust.
func NewS3Lister(obj *objstore.Store) *S3Lister { return &S3Lister{client: obj.Client()} }

// NewS3ListerClient returns an S3Lister over an existing client.
func NewS3ListerClient(c *minio.Client) *S3Lister { return &S3Lister{client: c} }

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
