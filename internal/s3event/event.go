// Package s3event parses S3 and MinIO bucket event notifications into
// Events and decides which of them must trigger a scan.
//
// It understands the three shapes that reach lazaret's s3 intake:
//
//   - AWS S3's notification document, {"Records": [...]}, as delivered to
//     SQS, Lambda or a webhook, with event names such as "ObjectCreated:Put"
//     (no "s3:" prefix) and possibly several records per document;
//   - MinIO's target payload for AMQP, NATS, webhook and Kafka, which wraps
//     one record as {"EventName": "s3:ObjectCreated:Put", "Key":
//     "bucket/decoded key", "Records": [...]};
//   - AWS's s3:TestEvent ({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
//     sent once when a notification configuration is saved: recognised and
//     turned into zero events.
//
// Object keys arrive form-encoded (MinIO sends "incoming%2Fa+b%2Bc" for the
// key "incoming/a b+c") and are decoded here, so every Event carries the key
// exactly as S3 stores it.
//
// The package does no I/O and holds no state: deduplication is the
// caller's, keyed by Event.DedupeKey.
package s3event

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Event is one object event from one notification record.
type Event struct {
	// Name is the event name as sent: "s3:ObjectCreated:Put" (MinIO) or
	// "ObjectCreated:Put" (AWS). See Type for the normalised form.
	Name string
	// Source is the record's eventSource: "aws:s3", "minio:s3", ...
	Source string
	// Region is the record's awsRegion; MinIO usually sends "".
	Region string
	// Time is the record's eventTime, zero when the record had none.
	Time time.Time
	// Bucket is the bucket name.
	Bucket string
	// Key is the object key, decoded: exactly the key S3 stores.
	Key string
	// Size is the object size in bytes; 0 when the record carries none
	// (removals).
	Size int64
	// ETag is the object's ETag without quotes, in lower case; "" when
	// the record carries none.
	ETag string
	// VersionID is the object version, "" for unversioned buckets.
	VersionID string
	// Sequencer orders events for the same key; S3 and MinIO give every
	// write its own value.
	Sequencer string
	// ContentType is the object's content type when the sender reports it
	// (MinIO does, AWS does not).
	ContentType string
	// Principal is userIdentity.principalId: who caused the event.
	Principal string
	// SourceIP is requestParameters.sourceIPAddress.
	SourceIP string
	// RequestID is responseElements["x-amz-request-id"], for correlating
	// with the server's logs.
	RequestID string
}

// Type returns the event name with the "s3:" prefix AWS leaves out, so that
// AWS's "ObjectCreated:Put" and MinIO's "s3:ObjectCreated:Put" compare
// equal.
func (e Event) Type() string {
	if e.Name == "" || strings.HasPrefix(e.Name, "s3:") {
		return e.Name
	}
	return "s3:" + e.Name
}

// scanTriggers are the event types that put new object content in place.
// It is an allow-list on purpose: MinIO reports metadata writes as
// s3:ObjectCreated:* too (PutTagging, DeleteTagging, PutRetention,
// PutLegalHold), and a deny-list would turn the next such name MinIO adds
// into a loop of the scanner rescanning its own tag writes.
var scanTriggers = map[string]bool{
	"s3:ObjectCreated:Put":                     true,
	"s3:ObjectCreated:Post":                    true,
	"s3:ObjectCreated:Copy":                    true,
	"s3:ObjectCreated:CompleteMultipartUpload": true,
}

// TriggersScan reports whether the event means new content that must be
// scanned: an object put, posted, copied or completed by a multipart
// upload. Everything else is false, in particular
// s3:ObjectCreated:PutTagging, which MinIO fires for every tag write with
// the same sequencer as the object's Put, so that the scanner's own tags
// never trigger a scan; retention, legal hold, ACL, restore, replication and
// removal events are false too.
func (e Event) TriggersScan() bool {
	return scanTriggers[e.Type()]
}

// Removed reports whether the event says the object (or a version of it)
// was removed.
func (e Event) Removed() bool {
	return strings.HasPrefix(e.Type(), "s3:ObjectRemoved:")
}

// DedupeKey identifies one version of one object as one event announced
// it, so that the same event delivered twice (S3 and MinIO deliver at
// least once; a broker may redeliver) is scanned once.
//
// It is the lower-case hex SHA-256 of, joined by NUL bytes:
//
//	"s3event/v1", Bucket, Key, "v:"+VersionID or "e:"+ETag, Sequencer
//
// VersionID is used when the bucket is versioned and ETag otherwise. The
// event name is left out on purpose: a redelivery is the same write
// however it is labelled. NUL cannot occur in a valid bucket or key (Parse
// refuses it), so the fields cannot run into each other. The format is
// versioned by its first field and must not change without changing it:
// stores keep these keys.
func (e Event) DedupeKey() string {
	version := "e:" + e.ETag
	if e.VersionID != "" {
		version = "v:" + e.VersionID
	}
	h := sha256.New()
	for i, part := range []string{"s3event/v1", e.Bucket, e.Key, version, e.Sequencer} {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil))
}
