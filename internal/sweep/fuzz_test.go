package sweep_test

import (
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/sweep"
)

// s3Bucket is a bucket name S3 accepts (3 to 63 characters; the rest of
// the rules are checked apart).
var s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// FuzzParseTarget checks ParseTarget on any command-line argument:
//
//   - an error gives the zero Target and says "sweep: target", quoting
//     the argument;
//   - a success sets exactly one of Bucket and Dir, and IsS3 says which;
//   - a bucket target was written s3:// (either case), its bucket follows
//     S3's naming rules (so it holds no '/'), and Bucket + "/" + Prefix is
//     what followed "s3://", as written;
//   - a folder target is filepath.Clean of the argument;
//   - String reads back to the same Target.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"s3://uploads", "s3://uploads/", "s3://uploads/incoming", "s3://uploads/incoming/",
		"s3://uploads/a b/ç%20/", "S3://my.bucket-1/x", "s3://abc", "s3://" + strings.Repeat("a", 63),
		"/srv/files", "./files/../data/", "weird://dir/x", "some/dir://x", "", "s3://", "s3:///prefix",
		"s3://ab", "s3://" + strings.Repeat("a", 64), "s3://Uploads", "s3://up_loads", "s3://-uploads",
		"s3://uploads-", "s3://up..loads", "s3://up.-loads", "s3://192.168.1.10", "gs://bucket/x",
		"s3://uploads//x", "s3:/uploads", "s3:uploads", "://x", `a\b://c`, ".", "/", "s3://a.b.c/\x00",
		"ſ3://uploads/x", // U+017F folds to 's'
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := sweep.ParseTarget(s)
		if err != nil {
			msg := err.Error()
			if got != (sweep.Target{}) || !strings.HasPrefix(msg, "sweep: target") ||
				(s != "" && !strings.Contains(msg, strconv.Quote(s))) {
				t.Fatalf("ParseTarget(%q) = %+v, %v; want the zero Target and an error quoting the target", s, got, err)
			}
			return
		}
		if (got.Bucket == "") == (got.Dir == "") || got.IsS3() != (got.Bucket != "") {
			t.Fatalf("ParseTarget(%q) = %+v (IsS3 %v): want exactly one of Bucket and Dir", s, got, got.IsS3())
		}
		if got.IsS3() {
			if len(s) < len("s3://") || !(s[:5] == "s3://" || s[:5] == "S3://") {
				t.Fatalf("ParseTarget(%q) = bucket %q: the scheme is not s3", s, got.Bucket)
			}
			if !s3Bucket.MatchString(got.Bucket) || strings.Contains(got.Bucket, "..") ||
				strings.Contains(got.Bucket, ".-") || strings.Contains(got.Bucket, "-.") || net.ParseIP(got.Bucket) != nil {
				t.Fatalf("ParseTarget(%q): bucket %q is not a valid S3 bucket name", s, got.Bucket)
			}
			r := s[len("s3://"):]
			if got.Prefix == "" && r != got.Bucket && r != got.Bucket+"/" ||
				got.Prefix != "" && r != got.Bucket+"/"+got.Prefix {
				t.Fatalf("ParseTarget(%q) = bucket %q, prefix %q: want %q split at the first '/'", s, got.Bucket, got.Prefix, r)
			}
		} else if got.Dir != filepath.Clean(s) {
			t.Fatalf("ParseTarget(%q) = folder %q, want %q", s, got.Dir, filepath.Clean(s))
		}
		again, err := sweep.ParseTarget(got.String())
		if err != nil || again != got {
			t.Fatalf("ParseTarget(%q) = %+v, but ParseTarget(%q) = %+v, %v", s, got, got.String(), again, err)
		}
	})
}
