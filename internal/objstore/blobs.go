package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/ctxio"
)

// blobPartSize bounds the memory of one Put: an upload of unknown length
// is sent in parts of this size, each buffered once. 16 MiB allows objects
// of up to 160 GiB (10,000 parts).
const blobPartSize = 16 << 20

// validBlobKey is blob.Dir's rule, so both drivers accept the same keys.
var validBlobKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Blobs is the S3 driver of blob.Store: queued uploads kept as objects
// under a prefix of one bucket, so that workers on other hosts can read
// them.
type Blobs struct {
	s      *Store
	bucket string
	prefix string
}

var _ blob.Store = (*Blobs)(nil)

// NewBlobs returns a blob.Store keeping blobs at bucket/prefix+key.
func NewBlobs(s *Store, bucket, prefix string) *Blobs {
	return &Blobs{s: s, bucket: bucket, prefix: prefix}
}

func (b *Blobs) object(key string) (string, error) {
	if !validBlobKey.MatchString(key) {
		return "", fmt.Errorf("objstore: blob: invalid key %q", key)
	}
	return b.prefix + key, nil
}

// Put stores r. An S3 object appears only when its upload completes, and a
// failed multipart upload is aborted, so readers never see half a blob.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	obj, err := b.object(key)
	if err != nil {
		return 0, err
	}
	src := &sourceReader{r: ctxio.Reader(ctx, r)}
	info, err := b.s.client.PutObject(ctx, b.bucket, obj, src, -1, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    blobPartSize,
	})
	if src.err != nil {
		if err == nil {
			// The client took the source's failure for the end of the
			// data and stored a truncated blob: remove it, with a
			// context that survives ctx, which may be what failed.
			if derr := b.s.Delete(context.WithoutCancel(ctx), b.bucket, obj, ""); derr != nil {
				b.s.log.WarnContext(ctx, "truncated blob left behind", "bucket", b.bucket, "key", obj, "err", derr)
			}
		}
		return 0, fmt.Errorf("objstore: blob put %s/%s: %w", b.bucket, obj, src.err)
	}
	if err != nil {
		return 0, fmt.Errorf("objstore: blob put %s/%s: %w", b.bucket, obj, classify(err))
	}
	return info.Size, nil
}

// sourceReader hides the source's errors from minio-go, which reads
// io.ErrUnexpectedEOF from its source as a short last part, not a
// failure: a cut-off upload would be stored as a complete blob. It
// records the error and reports a distinct one.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, errSourceFailed
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
		return n, errSourceFailed
	}
	return n, err
}

var errSourceFailed = errors.New("objstore: blob source failed")

// Open streams a blob; a missing one fails with blob.ErrNotFound.
func (b *Blobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := b.object(key)
	if err != nil {
		return nil, err
	}
	rc, _, _, err := b.s.core.GetObject(ctx, b.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		if err = classify(err); errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("objstore: blob open %s/%s: %w", b.bucket, obj, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("objstore: blob open %s/%s: %w", b.bucket, obj, err)
	}
	return rc, nil
}

// Delete removes a blob; a missing one is not an error.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	obj, err := b.object(key)
	if err != nil {
		return err
	}
	if err := b.s.Delete(ctx, b.bucket, obj, ""); err != nil {
		return fmt.Errorf("objstore: blob delete: %w", err)
	}
	return nil
}
