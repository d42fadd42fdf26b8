package objstore

// The MinIO the integration tests run against is testenv.SharedMinIO:
// the server LAZARET_TEST_S3 (http://ACCESS:SECRET@127.0.0.1:9000)
// names, else one MinIO started for the whole test binary. Without
// either, the tests skip, or fail when CI is set. Every test makes its
// own bucket, so they run in parallel and against a shared external
// server alike.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedMinIO()
	os.Exit(code)
}

// testServer returns the endpoint and root credentials of the shared
// server, starting it on first use.
func testServer(t testing.TB) (endpoint, user, password string) {
	t.Helper()
	m := testenv.SharedMinIO(t)
	return m.Endpoint, m.User, m.Password
}

// testConfig returns a Config for the shared server with the given
// effect settings.
func testConfig(t testing.TB, effects Config) Config {
	t.Helper()
	ep, user, pw := testServer(t)
	effects.Endpoint, effects.AccessKey, effects.SecretKey = ep, user, pw
	effects.PathStyle = true
	return effects
}

// newStore opens a Store on the shared server.
func newStore(t testing.TB, effects Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), testConfig(t, effects), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var bucketSeq atomic.Int64

// newBucket makes a bucket with a name unique in this run.
func newBucket(t testing.TB, s *Store, versioned bool) string {
	t.Helper()
	ctx := t.Context()
	name := fmt.Sprintf("lz-%d-%d", time.Now().UnixNano()%1e9, bucketSeq.Add(1))
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	if versioned {
		if err := s.client.EnableVersioning(ctx, name); err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
	return name
}

// put writes an object and returns its Info.
func put(t testing.TB, s *Store, bucket, key, body string, opts minio.PutObjectOptions) Info {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	if _, err := s.client.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), opts); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	info, err := s.Stat(ctx, bucket, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// objectTags returns an object's tags.
func objectTags(t testing.TB, s *Store, bucket, key, versionID string) map[string]string {
	t.Helper()
	tg, err := s.client.GetObjectTagging(t.Context(), bucket, key, minio.GetObjectTaggingOptions{VersionID: versionID})
	if err != nil {
		t.Fatalf("get tags of %s/%s: %v", bucket, key, err)
	}
	return tg.ToMap()
}
