package objstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/lazaret/lazaret/internal/scan"
)

// The actions Apply reports, for the job's actions field.
const (
	ActionTagged      = "tagged"
	ActionDeleted     = "deleted"
	ActionQuarantined = "quarantined"
)

// maxSingleCopy is the largest object S3 copies in one CopyObject request.
const maxSingleCopy = 5 << 30

// StatusPending is the status tag's value between an object's event and
// its verdict.
const StatusPending = "pending"

// Tag names used with TagPrefix.
const (
	tagSignature = "signature"
	tagScannedAt = "scanned-at"
)

// verdictTags returns the tags for a finished job, most important first
// (MergeTags drops from the end when the budget is short): the status, the
// signature, the time. A missing signature or time asks for removal, so no
// earlier scan's value lingers.
func (s *Store) verdictTags(job *scan.Job) []Tag {
	v := job.Verdict
	if !v.Valid() {
		// Fail closed: a job without a proper verdict must not read as
		// anything but an error to a policy keyed on the tag.
		v = scan.Error
	}
	at := ""
	if job.FinishedAt != nil {
		at = job.FinishedAt.UTC().Format(time.RFC3339)
	}
	return []Tag{
		{Key: s.cfg.TagKey, Value: string(v)},
		{Key: s.cfg.TagPrefix + tagSignature, Value: SanitizeTagValue(job.FirstSignature())},
		{Key: s.cfg.TagPrefix + tagScannedAt, Value: at},
	}
}

// Tag merges the job's verdict tags into the object's tags: the status tag
// (TagKey) = verdict, <prefix>signature = the first signature,
// <prefix>scanned-at = the job's FinishedAt (RFC 3339). See MergeTags for
// what happens when the object has many tags of its own. When the job
// names an ETag (Source.ETag) and the object has another, it fails with
// ErrChanged and tags nothing: that verdict belongs to other content.
// Tag does not check DisableTags; Apply does.
func (s *Store) Tag(ctx context.Context, bucket, key, versionID string, job *scan.Job) error {
	if job == nil {
		return fmt.Errorf("objstore: tag %s/%s: no job", bucket, key)
	}
	if err := s.check(ctx, bucket, key, versionID, job.Source.ETag); err != nil {
		return fmt.Errorf("objstore: tag %s/%s: %w", bucket, key, err)
	}
	if err := s.mergeTags(ctx, bucket, key, versionID, s.verdictTags(job)); err != nil {
		return fmt.Errorf("objstore: tag %s/%s: %w", bucket, key, err)
	}
	return nil
}

// TagPending merges <TagKey>=pending into the object's tags (and removes
// a stale signature and scan time) when Config.TagPending is on; it does
// nothing otherwise, so callers need not check. It overwrites any status
// tag present: an uploader may set one in its own PUT.
func (s *Store) TagPending(ctx context.Context, bucket, key, versionID string) error {
	if !s.cfg.TagPending || s.cfg.DisableTags {
		return nil
	}
	ours := []Tag{
		{Key: s.cfg.TagKey, Value: StatusPending},
		{Key: s.cfg.TagPrefix + tagSignature},
		{Key: s.cfg.TagPrefix + tagScannedAt},
	}
	if err := s.mergeTags(ctx, bucket, key, versionID, ours); err != nil {
		return fmt.Errorf("objstore: tag pending %s/%s: %w", bucket, key, err)
	}
	return nil
}

// mergeTags reads the object's tags, merges ours and writes the result,
// unless it is what the object already has: a redelivered event then
// writes nothing and fires no PutTagging event.
func (s *Store) mergeTags(ctx context.Context, bucket, key, versionID string, ours []Tag) error {
	cur, err := s.client.GetObjectTagging(ctx, bucket, key, minio.GetObjectTaggingOptions{VersionID: versionID})
	if err != nil {
		return fmt.Errorf("get tags: %w", classify(err))
	}
	existing := cur.ToMap()
	merged, err := MergeTags(existing, ours, s.cfg.TagKey)
	if err != nil {
		return err
	}
	if maps.Equal(existing, merged) {
		return nil
	}
	t, err := tags.MapToObjectTags(merged)
	if err != nil {
		// A user tag outside the client's character set (AWS allows
		// Unicode letters) lands here; S3 gives no way to keep it and
		// add ours, so report rather than drop the user's tag.
		return fmt.Errorf("put tags: %w", err)
	}
	if err := s.client.PutObjectTagging(ctx, bucket, key, t, minio.PutObjectTaggingOptions{VersionID: versionID}); err != nil {
		return fmt.Errorf("put tags: %w", classify(err))
	}
	return nil
}

// check fails with ErrChanged when etag is set and the object (version)
// now has another, and with ErrNotFound when it is gone. A version ID
// names immutable content, so a request for that version needs no check
// before it: it reaches those bytes or fails as not found.
func (s *Store) check(ctx context.Context, bucket, key, versionID, etag string) error {
	if etag == "" || (versionID != "" && versionID != "null") {
		return nil
	}
	opts := minio.StatObjectOptions{VersionID: versionID}
	if err := opts.SetMatchETag(normalizeETag(etag)); err != nil {
		return err
	}
	oi, err := s.client.StatObject(ctx, bucket, key, opts)
	if err != nil {
		return fmt.Errorf("stat: %w", classify(err))
	}
	return infoFrom(bucket, oi).Check(etag, versionID)
}

// Delete removes an object (version); one already gone counts as deleted.
// On a versioned bucket with versionID "", S3 adds a delete marker and the
// data stays in the older version: pass the event's version ID to remove
// the bytes themselves.
func (s *Store) Delete(ctx context.Context, bucket, key, versionID string) error {
	err := s.client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: versionID})
	if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("objstore: delete %s/%s: %w", bucket, key, err)
	}
	s.log.DebugContext(ctx, "object deleted", "bucket", bucket, "key", key, "version_id", versionID)
	return nil
}

// Quarantine moves an object (version) to QuarantineBucket at
// QuarantinePrefix+key: a server-side copy keeping its metadata and tags,
// with the job's verdict tags merged in, then the delete of the original.
//
// It is safe to run again after a crash at any point: a copy already in
// place (same ETag and size) is not made again, and with the original gone
// and the copy present there is nothing left to do. With neither, it fails
// with ErrNotFound. When the job names an ETag and the original now has
// another, it fails with ErrChanged and moves nothing.
func (s *Store) Quarantine(ctx context.Context, bucket, key, versionID string, job *scan.Job) error {
	if err := s.quarantine(ctx, bucket, key, versionID, job); err != nil {
		return fmt.Errorf("objstore: quarantine %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (s *Store) quarantine(ctx context.Context, bucket, key, versionID string, job *scan.Job) error {
	qb, qkey := s.cfg.QuarantineBucket, s.cfg.QuarantinePrefix+key
	if qb == "" {
		return errors.New("no quarantine bucket configured")
	}
	if s.cfg.Excludes(bucket, key) {
		// Moving an object onto (or under) itself would copy and then
		// delete the only copy.
		return fmt.Errorf("the object is already in the quarantine area %s/%s", qb, s.cfg.QuarantinePrefix)
	}
	src, err := s.Stat(ctx, bucket, key, versionID)
	if errors.Is(err, ErrNotFound) {
		if _, qerr := s.Stat(ctx, qb, qkey, ""); qerr == nil {
			s.log.DebugContext(ctx, "already quarantined", "bucket", bucket, "key", key, "quarantine_bucket", qb, "quarantine_key", qkey)
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	var etag string
	if job != nil {
		etag = job.Source.ETag
	}
	if err := src.Check(etag, versionID); err != nil {
		return err
	}

	dst, err := s.Stat(ctx, qb, qkey, "")
	switch {
	case err == nil && dst.ETag == src.ETag && dst.Size == src.Size:
		// A previous run copied it and stopped before the delete.
		s.log.DebugContext(ctx, "quarantine copy already in place", "bucket", bucket, "key", key, "quarantine_bucket", qb, "quarantine_key", qkey)
	case err == nil || errors.Is(err, ErrNotFound):
		if err := s.copyToQuarantine(ctx, src, versionID, job, qb, qkey); err != nil {
			return err
		}
	default:
		return err
	}
	if err := s.Delete(ctx, bucket, key, versionID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "object quarantined", "bucket", bucket, "key", key, "version_id", versionID, "quarantine_bucket", qb, "quarantine_key", qkey)
	return nil
}

// copyToQuarantine copies src server-side, pinned to the version and ETag
// that were checked, with the source's tags plus the job's.
func (s *Store) copyToQuarantine(ctx context.Context, src Info, versionID string, job *scan.Job, qb, qkey string) error {
	cur, err := s.client.GetObjectTagging(ctx, src.Bucket, src.Key, minio.GetObjectTaggingOptions{VersionID: versionID})
	if err != nil {
		return fmt.Errorf("get tags: %w", classify(err))
	}
	dstOpts := minio.CopyDestOptions{Bucket: qb, Object: qkey}
	if job != nil {
		merged, err := MergeTags(cur.ToMap(), s.verdictTags(job), s.cfg.TagKey)
		if err != nil {
			// The user's ten tags travel with the copy as they are; the
			// verdict is in the job record. Moving the infected object
			// matters more than labelling it.
			s.log.WarnContext(ctx, "quarantine copy without verdict tags", "bucket", src.Bucket, "key", src.Key, "err", err)
		} else {
			dstOpts.ReplaceTags, dstOpts.UserTags = true, merged
		}
	}
	srcOpts := minio.CopySrcOptions{
		Bucket: src.Bucket, Object: src.Key,
		// Pin what was checked: if the object changes meanwhile the copy
		// fails with PreconditionFailed rather than moving other content.
		VersionID: src.VersionID,
		MatchETag: src.ETag,
	}
	// S3 copies up to 5 GiB in one request, keeping the metadata itself.
	// Beyond, a multipart copy rebuilds the object and the metadata must be
	// given: the user metadata and content type (other standard headers,
	// such as Content-Encoding, are not carried over then).
	if src.Size <= s.maxSingleCopy {
		_, err = s.client.CopyObject(ctx, dstOpts, srcOpts)
	} else {
		meta := make(map[string]string, len(src.Metadata)+1)
		for k, v := range src.Metadata {
			meta[k] = v
		}
		if src.ContentType != "" {
			meta["Content-Type"] = src.ContentType
		}
		dstOpts.ReplaceMetadata, dstOpts.UserMetadata = true, meta
		if !dstOpts.ReplaceTags {
			dstOpts.ReplaceTags, dstOpts.UserTags = true, cur.ToMap()
		}
		_, err = s.client.ComposeObject(ctx, dstOpts, srcOpts)
	}
	if err = classify(err); errors.Is(err, ErrNotFound) {
		// Not found may be the destination (no quarantine bucket), which
		// must not read as the original being gone: that would record
		// the infected object as skipped and leave it where it is.
		if _, serr := s.Stat(ctx, src.Bucket, src.Key, src.VersionID); serr == nil {
			return fmt.Errorf("copy to %s/%s: the destination cannot be written (does the quarantine bucket exist?): %v", qb, qkey, err)
		}
	}
	if err != nil {
		return fmt.Errorf("copy to %s/%s: %w", qb, qkey, err)
	}
	return nil
}

// Apply carries out the effects of a finished job on its object and
// returns the actions done, for the job's actions field:
//
//   - unless DisableTags, Tag (ActionTagged);
//   - on an infected verdict only, OnInfected: Delete (ActionDeleted),
//     Quarantine (ActionQuarantined) or nothing more.
//
// The destructive step runs even when tagging failed (a user's ten tags, a
// denied PutObjectTagging): an infected object must not stay because a
// label would not fit. All failures are returned joined, so callers can
// test for ErrTagBudget, ErrChanged, ErrNotFound and ErrAccessDenied.
//
// Apply is idempotent: run again for the same job it writes no tag it
// already wrote, and finds an infected object it deleted or quarantined
// already gone, which is success.
func (s *Store) Apply(ctx context.Context, bucket, key, versionID string, job *scan.Job) ([]string, error) {
	if job == nil {
		return nil, fmt.Errorf("objstore: apply %s/%s: no job", bucket, key)
	}
	if job.Status != scan.Done {
		return nil, fmt.Errorf("objstore: apply %s/%s: job %s is %q, not done", bucket, key, job.ID, job.Status)
	}
	infected := job.Verdict == scan.Infected
	var actions []string
	var errs []error
	if !s.cfg.DisableTags {
		err := s.Tag(ctx, bucket, key, versionID, job)
		switch {
		case err == nil:
			actions = append(actions, ActionTagged)
		case errors.Is(err, ErrChanged):
			// Other content is there now: nothing of this job applies
			// to it, least of all a delete.
			return nil, err
		case infected && errors.Is(err, ErrNotFound) && s.cfg.OnInfected != OnInfectedTag:
			// Gone: most likely an earlier run of this same job deleted
			// or quarantined it. The step below confirms that.
		default:
			errs = append(errs, err)
		}
	}
	if !infected {
		return actions, errors.Join(errs...)
	}
	switch s.cfg.OnInfected {
	case OnInfectedDelete:
		if s.cfg.DisableTags {
			// Tag checked the ETag; without it, check here, so a new
			// upload under the same key is never deleted for the old
			// content's verdict.
			if err := s.check(ctx, bucket, key, versionID, job.Source.ETag); err != nil && !errors.Is(err, ErrNotFound) {
				return actions, errors.Join(append(errs, fmt.Errorf("objstore: delete %s/%s: %w", bucket, key, err))...)
			}
		}
		if err := s.Delete(ctx, bucket, key, versionID); err != nil {
			errs = append(errs, err)
		} else {
			actions = append(actions, ActionDeleted)
		}
	case OnInfectedQuarantine:
		if err := s.Quarantine(ctx, bucket, key, versionID, job); err != nil {
			errs = append(errs, err)
		} else {
			actions = append(actions, ActionQuarantined)
		}
	case OnInfectedTag:
	}
	return actions, errors.Join(errs...)
}
