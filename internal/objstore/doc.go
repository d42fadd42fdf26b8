// Package objstore reads objects from S3 or MinIO and carries out a bucket
// scan's effects on them: verdict tags, deletion and quarantine.
//
// # Reads
//
// Store.Open streams an object (nothing is buffered whole) and refuses,
// with ErrChanged, an object whose ETag or version is no longer the one the
// event named: the GET carries the version ID and If-Match, so the bytes
// scanned are exactly the bytes the event announced. An object that is gone
// fails with ErrNotFound. Both are what SPEC calls "recorded and skipped",
// never a retry loop. ErrNotFound and ErrAccessDenied also match
// fs.ErrNotExist and fs.ErrPermission, so scan.ReadReason maps them to the
// not_found and access_denied reasons without knowing this package.
//
// # Effects
//
// Every effect is idempotent, so that a redelivered event repeats nothing
// harmful:
//
//   - Tag and TagPending merge lazaret's tags into the object's own, never
//     replacing a user's tag (see MergeTags for the 10-tag budget), and do
//     not write at all when the merged set equals the current one.
//   - Delete treats a missing object as deleted.
//   - Quarantine copies the object server-side to the quarantine bucket
//     (QuarantinePrefix + key) with its metadata, its tags and lazaret's,
//     then deletes the original. Re-run after a crash between the two, it
//     finds the copy in place and finishes the delete; re-run after the
//     delete, it finds the original gone and the copy present and succeeds.
//   - Apply runs them for a finished job and never deletes anything whose
//     verdict is not infected.
//
// Before any effect, the object's current ETag is compared with the job's
// (Source.ETag), so a verdict is never written to, and a delete never hits,
// content that replaced the scanned object after its event. S3 has no
// conditional tagging or (portable) conditional delete, so on an
// unversioned bucket a write landing between that check and the effect can
// still race it; on a versioned bucket the version ID closes the gap.
//
// # Recognising the scanner's own writes
//
// Effects cause S3 events, and those must never trigger a new scan. This
// package does not filter events; callers recognise them thus:
//
//   - A tag write (Tag, TagPending, Apply) fires s3:ObjectCreated:PutTagging
//     on MinIO. Only content-creating events (s3:ObjectCreated:Put, :Post,
//     :Copy, :CompleteMultipartUpload) may start a scan; PutTagging and
//     other metadata events are ignored by name.
//   - A quarantine copy fires s3:ObjectCreated:Copy in the quarantine
//     bucket. That bucket (or, when it is the scanned bucket itself, its
//     QuarantinePrefix) must be excluded from scanning; Config.Excludes
//     reports whether an event's bucket and key fall there.
//   - The delete of the original fires s3:ObjectRemoved:*, which no intake
//     scans.
//
// The status tag is also a security boundary when a bucket policy lets
// readers fetch only objects tagged clean: an uploader may set tags in its
// own PUT (x-amz-tagging), so TagPending overwrites the status tag
// unconditionally, and the policy should deny uploaders
// s3:PutObjectTagging and x-amz-tagging.
package objstore
