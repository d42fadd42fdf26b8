package objstore

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/scan"
)

// TestOpenStreamsBoundedMemory reads a 100 MiB object through Open and
// checks its SHA-256 while the heap stays far below the object's size.
// It is not parallel, so that other tests' allocations do not blur the
// measurement.
func TestOpenStreamsBoundedMemory(t *testing.T) {
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, false)
	const size = 100 << 20
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), want)
	if _, err := s.client.PutObject(ctx, bucket, "big.bin", src, size, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse

	rc, info, err := s.Open(ctx, bucket, "big.bin", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if info.Size != size {
		t.Errorf("got size %d, want %d", info.Size, size)
	}
	got := sha256.New()
	buf := make([]byte, 64<<10)
	var n, nextCheck int64
	for {
		k, err := rc.Read(buf)
		got.Write(buf[:k])
		n += int64(k)
		if n >= nextCheck {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			nextCheck += 8 << 20
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", n, err)
		}
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	if hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Error("SHA-256 of the read differs from the upload's")
	}
	if grew := int64(peak) - int64(base); grew > 24<<20 {
		t.Errorf("heap grew by %d MiB while streaming a %d MiB object", grew>>20, size>>20)
	} else {
		t.Logf("heap grew by %.1f MiB while streaming %d MiB", float64(grew)/(1<<20), size>>20)
	}
}

func TestStatAndOpen(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, false)
	keys := []string{
		"plain.txt",
		"dir/with spaces/a b.txt",
		"plus+sign+c.txt",
		"ünïcödé/файл-文件.txt",
		"odd chars/%20&=?#;,@!.txt",
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			body := "content of " + key
			put(t, s, bucket, key, body, minio.PutObjectOptions{
				ContentType:  "text/plain",
				UserMetadata: map[string]string{"origin": "test"},
			})
			info, err := s.Stat(ctx, bucket, key, "")
			if err != nil {
				t.Fatal(err)
			}
			sum := md5.Sum([]byte(body))
			want := Info{Bucket: bucket, Key: key, Size: int64(len(body)), ETag: hex.EncodeToString(sum[:]), ContentType: "text/plain"}
			if info.Bucket != want.Bucket || info.Key != want.Key || info.Size != want.Size ||
				info.ETag != want.ETag || info.ContentType != want.ContentType {
				t.Errorf("got %+v, want %+v", info, want)
			}
			if info.Metadata["Origin"] != "test" {
				t.Errorf("got metadata %v, want Origin=test", info.Metadata)
			}
			if info.LastModified.IsZero() {
				t.Error("no last-modified time")
			}
			// The event's ETag may come quoted or in upper case.
			for _, etag := range []string{"", info.ETag, `"` + info.ETag + `"`, strings.ToUpper(info.ETag)} {
				rc, oinfo, err := s.Open(ctx, bucket, key, "", etag)
				if err != nil {
					t.Fatalf("open with etag %q: %v", etag, err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || string(b) != body {
					t.Errorf("read %q, %v; want %q", b, err, body)
				}
				if oinfo.ETag != info.ETag || oinfo.Key != key {
					t.Errorf("open info %+v, want etag %s key %s", oinfo, info.ETag, key)
				}
			}
		})
	}
}

func TestOpenChangedAndGone(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, false)
	old := put(t, s, bucket, "k", "first", minio.PutObjectOptions{})
	cur := put(t, s, bucket, "k", "second", minio.PutObjectOptions{})
	put(t, s, bucket, "gone", "x", minio.PutObjectOptions{})
	if err := s.client.RemoveObject(ctx, bucket, "gone", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, bucket, key, etag string
		want                    error
		std                     error // the io/fs error it must also match
	}{
		{"stale etag", bucket, "k", old.ETag, ErrChanged, nil},
		{"current etag", bucket, "k", cur.ETag, nil, nil},
		{"deleted object", bucket, "gone", "", ErrNotFound, fs.ErrNotExist},
		{"deleted object with etag", bucket, "gone", old.ETag, ErrNotFound, fs.ErrNotExist},
		{"never existed", bucket, "nothing/here", "", ErrNotFound, fs.ErrNotExist},
		{"no bucket", "lz-no-such-bucket", "k", "", ErrNotFound, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, _, err := s.Open(ctx, tt.bucket, tt.key, "", tt.etag)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.std != nil && !errors.Is(err, tt.std) {
				t.Errorf("got %v, want it to match %v", err, tt.std)
			}
			if tt.want == ErrNotFound {
				if r := scan.ReadReason(err); r != scan.ReasonNotFound {
					t.Errorf("scan.ReadReason = %q, want %q", r, scan.ReasonNotFound)
				}
				if _, err := s.Stat(ctx, tt.bucket, tt.key, ""); !errors.Is(err, ErrNotFound) {
					t.Errorf("stat: got %v, want ErrNotFound", err)
				}
			}
		})
	}

	// Stat has no ETag of its own to check; Info.Check compares.
	info, err := s.Stat(ctx, bucket, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := info.Check(old.ETag, ""); !errors.Is(err, ErrChanged) {
		t.Errorf("Check(stale etag): got %v, want ErrChanged", err)
	}
	if err := info.Check(`"`+cur.ETag+`"`, ""); err != nil {
		t.Errorf("Check(current etag): %v", err)
	}
}

func TestVersioned(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, true)
	v1 := put(t, s, bucket, "doc.txt", "version one", minio.PutObjectOptions{})
	v2 := put(t, s, bucket, "doc.txt", "version two", minio.PutObjectOptions{})
	if v1.VersionID == "" || v1.VersionID == v2.VersionID {
		t.Fatalf("versions %q and %q, want two distinct IDs", v1.VersionID, v2.VersionID)
	}

	read := func(versionID, etag string) (string, error) {
		rc, info, err := s.Open(ctx, bucket, "doc.txt", versionID, etag)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		if versionID != "" && info.VersionID != versionID {
			t.Errorf("got version %s, want %s", info.VersionID, versionID)
		}
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	for _, tt := range []struct {
		name, version, etag, want string
		err                       error
	}{
		{"old version by id", v1.VersionID, "", "version one", nil},
		{"old version by id and etag", v1.VersionID, v1.ETag, "version one", nil},
		{"current", "", "", "version two", nil},
		{"old version, wrong etag", v1.VersionID, v2.ETag, "", ErrChanged},
		{"current, old etag", "", v1.ETag, "", ErrChanged},
	} {
		got, err := read(tt.version, tt.etag)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}

	// Deleting one version leaves the other.
	if err := s.Delete(ctx, bucket, "doc.txt", v1.VersionID); err != nil {
		t.Fatal(err)
	}
	if _, err := read(v1.VersionID, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted version: got %v, want ErrNotFound", err)
	}
	if got, err := read(v2.VersionID, ""); err != nil || got != "version two" {
		t.Errorf("other version: got %q, %v", got, err)
	}
	if err := s.Delete(ctx, bucket, "doc.txt", v1.VersionID); err != nil {
		t.Errorf("deleting a deleted version again: %v", err)
	}

	// Tags go on the version named.
	j := doneJob(scan.Clean, v2.ETag)
	if err := s.Tag(ctx, bucket, "doc.txt", v2.VersionID, j); err != nil {
		t.Fatal(err)
	}
	if got := objectTags(t, s, bucket, "doc.txt", v2.VersionID)["lazaret-status"]; got != "clean" {
		t.Errorf("got status %q on the version, want clean", got)
	}
	v3 := put(t, s, bucket, "doc.txt", "version three", minio.PutObjectOptions{})
	if got := objectTags(t, s, bucket, "doc.txt", v3.VersionID); len(got) != 0 {
		t.Errorf("newer version has tags %v, want none", got)
	}
	// A verdict for an old version is written to that version, even
	// though the key now holds other content.
	if err := s.Tag(ctx, bucket, "doc.txt", v2.VersionID, j); err != nil {
		t.Errorf("re-tag old version: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	t.Parallel()
	good := newStore(t, Config{})
	bucket := newBucket(t, good, false)
	put(t, good, bucket, "k", "x", minio.PutObjectOptions{})
	cfg := testConfig(t, Config{})
	for _, tt := range []struct{ name, user, pass string }{
		{"wrong secret", cfg.AccessKey, "not-the-password"},
		{"unknown user", "nobody-here", "whatever-secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.AccessKey, c.SecretKey = tt.user, tt.pass
			c.Region = "us-east-1" // no location lookup first
			s, err := Open(t.Context(), c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Stat(t.Context(), bucket, "k", ""); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("stat: got %v, want ErrAccessDenied", err)
			}
			rc, _, err := s.Open(t.Context(), bucket, "k", "", "")
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, ErrAccessDenied) || !errors.Is(err, fs.ErrPermission) {
				t.Errorf("open: got %v, want ErrAccessDenied", err)
			}
			if strings.Contains(err.Error(), tt.pass) {
				t.Errorf("error shows the secret: %v", err)
			}
			if err := s.Ping(t.Context(), bucket); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("ping: got %v, want ErrAccessDenied", err)
			}
		})
	}
	if err := good.Ping(t.Context(), bucket); err != nil {
		t.Errorf("ping with good credentials: %v", err)
	}
	if err := good.Ping(t.Context(), "lz-no-such-bucket"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ping of a missing bucket: got %v, want ErrNotFound", err)
	}
}
