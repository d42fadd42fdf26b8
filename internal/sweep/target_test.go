package sweep_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/sweep"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    sweep.Target
		wantErr string // a part of the error; "" for none
	}{
		{in: "s3://uploads", want: sweep.Target{Bucket: "uploads"}},
		{in: "s3://uploads/", want: sweep.Target{Bucket: "uploads"}},
		{in: "s3://uploads/incoming", want: sweep.Target{Bucket: "uploads", Prefix: "incoming"}},
		{in: "s3://uploads/incoming/", want: sweep.Target{Bucket: "uploads", Prefix: "incoming/"}},
		{in: "s3://uploads/a b/ç%20/", want: sweep.Target{Bucket: "uploads", Prefix: "a b/ç%20/"}},
		{in: "S3://my.bucket-1/x", want: sweep.Target{Bucket: "my.bucket-1", Prefix: "x"}},
		{in: "s3://abc", want: sweep.Target{Bucket: "abc"}},
		{in: "s3://" + strings.Repeat("a", 63), want: sweep.Target{Bucket: strings.Repeat("a", 63)}},
		{in: "/srv/files", want: sweep.Target{Dir: "/srv/files"}},
		{in: "./files/../data/", want: sweep.Target{Dir: "data"}},
		{in: "weird://dir/x", wantErr: `scheme "weird"`},
		{in: "some/dir://x", want: sweep.Target{Dir: filepath.Clean("some/dir://x")}},
		{in: "", wantErr: "empty"},
		{in: "s3://", wantErr: "no bucket"},
		{in: "s3:///prefix", wantErr: "no bucket"},
		{in: "s3://ab", wantErr: "3 to 63"},
		{in: "s3://" + strings.Repeat("a", 64), wantErr: "3 to 63"},
		{in: "s3://Uploads", wantErr: "lower-case"},
		{in: "s3://up_loads", wantErr: "lower-case"},
		{in: "s3://-uploads", wantErr: "lower-case"},
		{in: "s3://uploads-", wantErr: "lower-case"},
		{in: "s3://up..loads", wantErr: "no dot next to"},
		{in: "s3://up.-loads", wantErr: "no dot next to"},
		{in: "s3://192.168.1.10", wantErr: "IP address"},
		{in: "gs://bucket/x", wantErr: "not supported"},
		{in: "ſ3://bucket/x", wantErr: "not supported"}, // U+017F, which case-folds to 's'
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sweep.ParseTarget(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseTarget(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.IsS3() != (tt.want.Bucket != "") {
				t.Errorf("IsS3() = %v", got.IsS3())
			}
			// String reads back to the same target.
			again, err := sweep.ParseTarget(got.String())
			if err != nil || again != got {
				t.Errorf("ParseTarget(%q.String() = %q) = %+v, %v; want %+v", tt.in, got.String(), again, err, got)
			}
		})
	}
}

func TestJobID(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	base := sweep.JobID("uploads", "a/b.txt", "", "44d88612fea8a8f36de82e1278abb02f", t0)
	if len(base) != 26 {
		t.Fatalf("JobID = %q, want a 26-character ULID", base)
	}
	if again := sweep.JobID("uploads", "a/b.txt", "", `"44D88612FEA8A8F36DE82E1278ABB02F"`, t0); again != base {
		t.Errorf("quoted upper-case ETag: got %s, want %s", again, base)
	}
	if again := sweep.JobID("uploads", "a/b.txt", "null", "44d88612fea8a8f36de82e1278abb02f", t0); again != base {
		t.Errorf(`version "null": got %s, want %s (null is no version)`, again, base)
	}
	for name, other := range map[string]string{
		"bucket":  sweep.JobID("uploads2", "a/b.txt", "", "44d88612fea8a8f36de82e1278abb02f", t0),
		"key":     sweep.JobID("uploads", "a/b.txt2", "", "44d88612fea8a8f36de82e1278abb02f", t0),
		"version": sweep.JobID("uploads", "a/b.txt", "v1", "44d88612fea8a8f36de82e1278abb02f", t0),
		"etag":    sweep.JobID("uploads", "a/b.txt", "", "54d88612fea8a8f36de82e1278abb02f", t0),
		"split":   sweep.JobID("upload", "sa/b.txt", "", "44d88612fea8a8f36de82e1278abb02f", t0),
	} {
		if other == base {
			t.Errorf("a different %s gives the same ID %s", name, base)
		}
	}
	// The time part is LastModified: IDs sort by the objects' age.
	older := sweep.JobID("uploads", "z", "", "e1", t0.Add(-time.Hour))
	newer := sweep.JobID("uploads", "a", "", "e2", t0.Add(time.Hour))
	if !(older < base && base < newer) {
		t.Errorf("IDs do not sort by LastModified: %s, %s, %s", older, base, newer)
	}
	// A zero time still gives a valid ID.
	if id := sweep.JobID("uploads", "k", "", "e", time.Time{}); len(id) != 26 {
		t.Errorf("zero time: JobID = %q", id)
	}

	f := sweep.FileJobID("/srv/a", 10, t0)
	if f != sweep.FileJobID("/srv/a", 10, t0) {
		t.Error("FileJobID is not deterministic")
	}
	for name, other := range map[string]string{
		"path":  sweep.FileJobID("/srv/b", 10, t0),
		"size":  sweep.FileJobID("/srv/a", 11, t0),
		"mtime": sweep.FileJobID("/srv/a", 10, t0.Add(time.Nanosecond)),
	} {
		if other == f {
			t.Errorf("a different %s gives the same file ID %s", name, f)
		}
	}
}
