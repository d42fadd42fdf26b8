package objstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/blob"
)

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestBlobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Config{})
	bucket := newBucket(t, s, false)
	var b blob.Store = NewBlobs(s, bucket, "spool/")

	big := make([]byte, blobPartSize+12345) // more than one part
	rand.NewChaCha8([32]byte{2}).Read(big)
	for _, tt := range []struct {
		name, key string
		body      []byte
	}{
		{"small", "01JD6Q3K8M4Z7X2V9B1N5T0RCE", []byte("hello")},
		{"empty", "empty_blob", nil},
		{"multipart", "big-one", big},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, err := b.Put(ctx, tt.key, bytes.NewReader(tt.body))
			if err != nil || n != int64(len(tt.body)) {
				t.Fatalf("put: got %d, %v; want %d", n, err, len(tt.body))
			}
			if !exists(t, s, bucket, "spool/"+tt.key) {
				t.Fatal("no object under the prefix")
			}
			rc, err := b.Open(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, tt.body) {
				t.Errorf("read %d bytes, %v; want the %d put", len(got), err, len(tt.body))
			}
			if err := b.Delete(ctx, tt.key); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, tt.key); err != nil {
				t.Errorf("second delete: %v", err)
			}
			if _, err := b.Open(ctx, tt.key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("open after delete: got %v, want blob.ErrNotFound", err)
			}
		})
	}

	for _, bad := range []string{"", "../x", "a/b", strings.Repeat("a", 200)} {
		if _, err := b.Put(ctx, bad, strings.NewReader("")); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	// A failed put leaves nothing behind, not even a multipart upload.
	for _, r := range []io.Reader{
		io.MultiReader(strings.NewReader("x"), failingReader{}),
		io.MultiReader(bytes.NewReader(big), failingReader{}),
	} {
		if _, err := b.Put(ctx, "broken", r); err == nil {
			t.Error("put of a failing reader succeeded")
		}
		if exists(t, s, bucket, "spool/broken") {
			t.Error("a failed put left an object")
		}
	}
	for u := range s.client.ListIncompleteUploads(ctx, bucket, "spool/", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
	// The object is plain S3: other hosts read it with any client.
	if _, err := b.Put(ctx, "shared", strings.NewReader("for another worker")); err != nil {
		t.Fatal(err)
	}
	o, err := s.client.GetObject(ctx, bucket, "spool/shared", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, _ := io.ReadAll(o); string(got) != "for another worker" {
		t.Errorf("got %q", got)
	}
}
