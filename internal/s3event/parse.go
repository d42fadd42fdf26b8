package s3event

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxBodySize is the default limit on a notification body. S3 and MinIO
// documents are a few KiB per record; anything near a mebibyte is not a
// notification, and refusing it early keeps a hostile sender from making
// the intake buffer and decode it.
const MaxBodySize = 1 << 20

// MaxKeyLen is S3's limit on an object key: 1024 bytes of UTF-8.
const MaxKeyLen = 1024

// maxBucketLen is generous: S3 allows 63 bytes, but MinIO's legacy and
// other S3 servers' names are longer. It only keeps garbage out.
const maxBucketLen = 255

// testEvent is the Event AWS sends once when a notification configuration
// is saved.
const testEvent = "s3:TestEvent"

// ErrTooLarge is returned (wrapped) for a body over the size limit.
var ErrTooLarge = errors.New("notification body too large")

// RecordError is a problem with one record of a notification. Index is the
// record's position in Records, from 0.
type RecordError struct {
	Index int
	Err   error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("s3event: record %d: %v", e.Index, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Parser parses notifications. The zero value is ready to use and is what
// Parse and ParseReader use.
type Parser struct {
	// MaxBytes limits the body; 0 means MaxBodySize.
	MaxBytes int64
	// RawKeys says the sender puts object keys in records as they are,
	// not form-encoded. S3 and MinIO encode them; versitygw does not,
	// and decoding its raw "a+b" would give the wrong key "a b".
	RawKeys bool
}

// Parse parses a notification body with the default Parser.
func Parse(b []byte) ([]Event, error) { return Parser{}.Parse(b) }

// ParseReader reads and parses a notification body with the default
// Parser, reading at most one byte past the limit.
func ParseReader(r io.Reader) ([]Event, error) { return Parser{}.ParseReader(r) }

func (p Parser) limit() int64 {
	if p.MaxBytes > 0 {
		return p.MaxBytes
	}
	return MaxBodySize
}

// ParseReader reads a notification body from r, refusing it as soon as it
// exceeds the limit, and parses it.
func (p Parser) ParseReader(r io.Reader) ([]Event, error) {
	max := p.limit()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("s3event: read notification: %w", err)
	}
	return p.Parse(b)
}

// Parse parses one notification body into its events, in record order.
//
// A batch is all or nothing: if any record is invalid, Parse returns no
// events and an error naming the first bad record (a *RecordError), so
// the caller can reject the whole message (to a dead-letter queue, say)
// rather than lose part of it silently. An s3:TestEvent, or a document
// with an empty Records list, gives zero events and no error.
//
// Every returned Event has a non-empty Bucket and a Key that is valid
// UTF-8, at most MaxKeyLen bytes and free of NUL bytes.
func (p Parser) Parse(b []byte) ([]Event, error) {
	if max := p.limit(); int64(len(b)) > max {
		return nil, fmt.Errorf("s3event: %w: over %d bytes", ErrTooLarge, max)
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("s3event: decode notification: %w", err)
	}
	switch {
	case doc.Records != nil && len(*doc.Records) > 0:
		events := make([]Event, 0, len(*doc.Records))
		for i, raw := range *doc.Records {
			ev, err := p.record(raw, doc.EventName)
			if err != nil {
				return nil, &RecordError{Index: i, Err: err}
			}
			events = append(events, ev)
		}
		return events, nil
	case doc.EventName != "" && doc.Key != "":
		// MinIO's wrapper without records: never seen from MinIO
		// itself, but its Key is enough to name the object.
		ev, err := wrapperEvent(doc.EventName, doc.Key)
		if err != nil {
			return nil, &RecordError{Index: 0, Err: err}
		}
		return []Event{ev}, nil
	case doc.Records != nil:
		return nil, nil
	case doc.Event == testEvent:
		return nil, nil
	case doc.Event != "":
		return nil, fmt.Errorf("s3event: unsupported event %q without records", doc.Event)
	}
	return nil, errors.New("s3event: not an S3 event notification: no Records, EventName or Event")
}

// document is the top level of every shape Parse accepts.
type document struct {
	// Records is a pointer so that an empty list ({"Records": []}) can be
	// told from none at all.
	Records *[]json.RawMessage `json:"Records"`
	// EventName and Key are MinIO's wrapper. Key is "bucket/key" with
	// the key already decoded.
	EventName string `json:"EventName"`
	Key       string `json:"Key"`
	// Service and Event are AWS's test event.
	Service string `json:"Service"`
	Event   string `json:"Event"`
}

// record is one entry of Records; fields lazaret does not use are left
// out, so that their shape never makes a record fail.
type record struct {
	EventSource  string `json:"eventSource"`
	AWSRegion    string `json:"awsRegion"`
	EventTime    string `json:"eventTime"`
	EventName    string `json:"eventName"`
	UserIdentity struct {
		PrincipalID string `json:"principalId"`
	} `json:"userIdentity"`
	RequestParameters struct {
		SourceIPAddress string `json:"sourceIPAddress"`
	} `json:"requestParameters"`
	ResponseElements struct {
		RequestID string `json:"x-amz-request-id"`
	} `json:"responseElements"`
	S3 struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key         string `json:"key"`
			Size        int64  `json:"size"`
			ETag        string `json:"eTag"`
			VersionID   string `json:"versionId"`
			Sequencer   string `json:"sequencer"`
			ContentType string `json:"contentType"`
		} `json:"object"`
	} `json:"s3"`
}

func (p Parser) record(raw json.RawMessage, wrapperName string) (Event, error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return Event{}, fmt.Errorf("decode: %w", err)
	}
	name := r.EventName
	if name == "" {
		name = wrapperName
	}
	if name == "" {
		return Event{}, errors.New("missing eventName")
	}
	if err := checkBucket(r.S3.Bucket.Name); err != nil {
		return Event{}, err
	}
	key := r.S3.Object.Key
	if key == "" {
		return Event{}, errors.New("missing s3.object.key")
	}
	if !p.RawKeys {
		var err error
		// Form decoding, not path decoding: S3 and MinIO encode a
		// space as "+" and a literal "+" as "%2B".
		if key, err = url.QueryUnescape(key); err != nil {
			return Event{}, fmt.Errorf("s3.object.key: %w", err)
		}
	}
	if err := checkKey(key); err != nil {
		return Event{}, err
	}
	if r.S3.Object.Size < 0 {
		return Event{}, fmt.Errorf("s3.object.size: negative (%d)", r.S3.Object.Size)
	}
	var t time.Time
	if r.EventTime != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, r.EventTime); err != nil {
			return Event{}, fmt.Errorf("eventTime: %w", err)
		}
	}
	return Event{
		Name:        name,
		Source:      r.EventSource,
		Region:      r.AWSRegion,
		Time:        t,
		Bucket:      r.S3.Bucket.Name,
		Key:         key,
		Size:        r.S3.Object.Size,
		ETag:        normalizeETag(r.S3.Object.ETag),
		VersionID:   r.S3.Object.VersionID,
		Sequencer:   r.S3.Object.Sequencer,
		ContentType: r.S3.Object.ContentType,
		Principal:   r.UserIdentity.PrincipalID,
		SourceIP:    r.RequestParameters.SourceIPAddress,
		RequestID:   r.ResponseElements.RequestID,
	}, nil
}

// wrapperEvent builds an event from MinIO's top-level EventName and Key
// ("bucket/key", key already decoded).
func wrapperEvent(name, full string) (Event, error) {
	bucket, key, ok := strings.Cut(full, "/")
	if !ok {
		return Event{}, fmt.Errorf("wrapper key %q: want bucket/key", full)
	}
	if err := checkBucket(bucket); err != nil {
		return Event{}, err
	}
	if key == "" {
		return Event{}, errors.New("missing object key in Key")
	}
	if err := checkKey(key); err != nil {
		return Event{}, err
	}
	return Event{Name: name, Bucket: bucket, Key: key}, nil
}

func checkBucket(b string) error {
	switch {
	case b == "":
		return errors.New("missing s3.bucket.name")
	case len(b) > maxBucketLen:
		return fmt.Errorf("s3.bucket.name: %d bytes, over %d", len(b), maxBucketLen)
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7f || c == '/' {
			return fmt.Errorf("s3.bucket.name %q: invalid byte %#02x at %d", b, c, i)
		}
	}
	return nil
}

// checkKey applies S3's rules to a decoded key, plus no NUL: a NUL would
// truncate the key in C-based tools and in PostgreSQL text.
func checkKey(k string) error {
	switch {
	case len(k) > MaxKeyLen:
		return fmt.Errorf("object key: %d bytes, over %d", len(k), MaxKeyLen)
	case !utf8.ValidString(k):
		return errors.New("object key: not valid UTF-8")
	case strings.IndexByte(k, 0) >= 0:
		return errors.New("object key: contains a NUL byte")
	}
	return nil
}

// normalizeETag strips the quotes S3 puts around ETags in HTTP headers
// (versitygw keeps them in events too) and lower-cases the hex, so that
// an event's ETag compares equal to a HEAD response's.
func normalizeETag(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return strings.ToLower(s)
}
