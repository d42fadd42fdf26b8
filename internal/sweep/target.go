package sweep

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Target is what a sweep covers: the objects of a bucket under a key
// prefix, or the regular files under a local folder. Exactly one of Bucket
// and Dir is set.
type Target struct {
	// Bucket and Prefix name the objects to sweep. Prefix is a plain key
	// prefix, as S3 lists it: "in/" covers "in/a" but not "inbox/a", while
	// "in" covers both.
	Bucket, Prefix string
	// Dir is a local folder (or a single file).
	Dir string
}

// IsS3 reports whether the target is a bucket.
func (t Target) IsS3() bool { return t.Bucket != "" }

// String is the target as ParseTarget reads it.
func (t Target) String() string {
	if t.IsS3() {
		if t.Prefix == "" {
			return "s3://" + t.Bucket
		}
		return "s3://" + t.Bucket + "/" + t.Prefix
	}
	return t.Dir
}

// ParseTarget reads "s3://BUCKET[/PREFIX]" or a local folder path. The
// prefix is everything after the first slash, kept as written (keys are
// not URL-encoded, as with the aws CLI). A string with another scheme
// ("gs://...") is refused rather than taken for a folder of that name.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("sweep: target: empty; want s3://BUCKET[/PREFIX] or a folder")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || strings.ContainsAny(scheme, `/\`) {
		// No scheme, or "://" inside a path: a folder.
		return Target{Dir: filepath.Clean(s)}, nil
	}
	// Not strings.EqualFold, which would take "ſ3" (U+017F) for "s3".
	if scheme != "s3" && scheme != "S3" {
		return Target{}, fmt.Errorf("sweep: target %q: scheme %q is not supported; want s3://BUCKET[/PREFIX] or a folder", s, scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Target{}, fmt.Errorf("sweep: target %q: no bucket; want s3://BUCKET[/PREFIX]", s)
	}
	if err := checkBucketName(bucket); err != nil {
		return Target{}, fmt.Errorf("sweep: target %q: %w", s, err)
	}
	return Target{Bucket: bucket, Prefix: prefix}, nil
}

var (
	bucketChars = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
	ipv4Like    = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
)

// checkBucketName applies S3's bucket naming rules (which MinIO shares),
// so that a typo fails here with a reason rather than as a listing error
// from the server.
func checkBucketName(b string) error {
	switch {
	case len(b) < 3 || len(b) > 63:
		return fmt.Errorf("bucket name %q: must be 3 to 63 characters long", b)
	case !bucketChars.MatchString(b):
		return fmt.Errorf("bucket name %q: only lower-case letters, digits, dots and hyphens, beginning and ending with a letter or digit", b)
	case strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-."):
		return fmt.Errorf("bucket name %q: no dot next to another dot or a hyphen", b)
	case ipv4Like.MatchString(b):
		return fmt.Errorf("bucket name %q: must not look like an IP address", b)
	}
	return nil
}
