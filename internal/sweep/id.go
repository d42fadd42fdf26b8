package sweep

import (
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// JobID is the job ID for one listed object: a ULID whose time is the
// object's LastModified and whose entropy comes from the bucket, key,
// version and ETag, so that the same object content maps to the same job
// on every sweep (which is what lets a sweep resume), and IDs sort by the
// objects' age, as event jobs sort by their events' time.
//
// It is bucket.JobID's scheme without the event's sequencer, which a
// listing does not have: a sweep job and an event job for the same object
// therefore differ, and a sweep recognises objects the event path scanned
// by their tags (Config.UntaggedOnly) instead. The ETag is normalised (no
// quotes, lower case), and a version ID "null" is none, as S3 means it.
func JobID(bucket, key, versionID, etag string, lastModified time.Time) string {
	if versionID == "null" {
		versionID = ""
	}
	etag = normalizeETag(etag)
	// NUL cannot occur in a bucket name or an object key, so the fields
	// cannot run into each other; "sweep/v1" versions the format and keeps
	// these IDs apart from any other deterministic scheme.
	return deterministicID(lastModified, "sweep/v1\x00s3\x00"+bucket+"\x00"+key+"\x00"+versionID+"\x00"+etag)
}

// FileJobID is the job ID for one local file: as JobID, from its absolute
// path, size and modification time, so that an unchanged file maps to the
// same job on every sweep and a modified one to a new job.
func FileJobID(absPath string, size int64, modTime time.Time) string {
	return deterministicID(modTime, "sweep/v1\x00file\x00"+absPath+"\x00"+
		strconv.FormatInt(size, 10)+"\x00"+strconv.FormatInt(modTime.UnixNano(), 10))
}

func deterministicID(t time.Time, key string) string {
	sum := sha256.Sum256([]byte(key))
	var id ulid.ULID
	ms := t.UnixMilli()
	if t.IsZero() || ms < 0 || uint64(ms) > ulid.MaxTime() {
		ms = 0
	}
	_ = id.SetTime(uint64(ms)) // in range: checked above
	_ = id.SetEntropy(sum[:10])
	return id.String()
}
