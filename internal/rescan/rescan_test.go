package rescan

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lazaret/lazaret/internal/engine/builtin"
	"github.com/lazaret/lazaret/internal/objstore"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store/sqlite"
	"github.com/lazaret/lazaret/internal/testenv"
)

// TestSignatureChangeFlipsVerdict: an object scanned clean becomes
// infected when a new signature matches it; the rescan updates the job,
// deletes the object and reports the change; a second rescan finds
// nothing to do.
func TestSignatureChangeFlipsVerdict(t *testing.T) {
	ctx := context.Background()
	mio := testenv.StartMinIO(t, nil)
	mc, err := minio.New(strings.TrimPrefix(mio.Endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(mio.User, mio.Password, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "uploads", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := testenv.Deterministic(t.Name(), 3000)
	info, err := mc.PutObject(ctx, "uploads", "report.pdf", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.Open(ctx, objstore.Config{Endpoint: mio.Endpoint, AccessKey: mio.User, SecretKey: mio.Password, PathStyle: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sigs := t.TempDir()
	if err := testenv.WriteSignatures(sigs); err != nil {
		t.Fatal(err)
	}
	eng, err := builtin.New(builtin.Config{Name: "blocklist", SignaturesDir: sigs, ReloadInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Engines: []scan.Engine{eng}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// The first scan, as a bucket worker does it.
	src := scan.Source{Kind: "s3", Bucket: "uploads", Key: "report.pdf", ETag: info.ETag}
	apply := func(ctx context.Context, j *scan.Job) ([]string, error) {
		return objects.Apply(ctx, "uploads", "report.pdf", "", j)
	}
	job, err := p.Scan(ctx, pipeline.Request{Name: "report.pdf", Body: bytes.NewReader(data), Size: -1, Source: src, Effects: apply})
	if err != nil || job.Verdict != scan.Clean {
		t.Fatalf("first scan: %v, %+v", err, job)
	}

	// New signatures: the same bytes are now known bad.
	sum := md5.Sum(data)
	os.WriteFile(filepath.Join(sigs, "new.hdb"), fmt.Appendf(nil, "%s:%d:Lazaret.Test.Report\n", hex.EncodeToString(sum[:]), len(data)), 0o644)
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	var changed []string
	cfg := Config{Jobs: st, Pipeline: p, Objects: objects, VersionChanged: true,
		Changed: func(ctx context.Context, j *scan.Job, prev scan.Verdict) error {
			changed = append(changed, fmt.Sprintf("%s %s->%s", j.ID, prev, j.Verdict))
			return nil
		}}
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Selected != 1 || s.Rescanned != 1 || s.Changed != 1 || s.Errors != 0 {
		t.Errorf("summary %+v", s)
	}
	if want := job.ID + " clean->infected"; len(changed) != 1 || changed[0] != want {
		t.Errorf("changes %v, want [%s]", changed, want)
	}
	got, err := st.GetJob(ctx, job.ID)
	if err != nil || got.Verdict != scan.Infected || got.FirstSignature() != "Lazaret.Test.Report.UNOFFICIAL" ||
		strings.Join(got.Actions, ",") != "tagged,deleted" || got.Attempts != 2 {
		t.Errorf("job after rescan: %+v, %v", got, err)
	}
	if _, err := mc.StatObject(ctx, "uploads", "report.pdf", minio.StatObjectOptions{}); err == nil {
		t.Error("the object is still there after it turned infected")
	}
	// Nothing left to do.
	s, err = Run(ctx, cfg)
	if err != nil || s.Selected != 0 {
		t.Errorf("second rescan: %+v, %v", s, err)
	}
	if _, err := Run(ctx, Config{Jobs: st, Pipeline: p}); err == nil {
		t.Error("a rescan with no selection ran")
	}
}
