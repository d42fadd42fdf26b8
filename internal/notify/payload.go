package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// The events lazaret sends.
const (
	// EventScanCompleted is sent when a job is done.
	EventScanCompleted = "scan.completed"
	// EventVerdictChanged is sent when a rescan changed a stored verdict.
	EventVerdictChanged = "verdict.changed"
)

// validEvent reports whether name is an event lazaret sends.
func validEvent(name string) bool {
	switch name {
	case EventScanCompleted, EventVerdictChanged:
		return true
	}
	return false
}

// Payload returns the webhook body for event and job: the job's JSON (as
// the HTTP API shows it) with an "event" field first.
func Payload(event string, job *scan.Job) ([]byte, error) {
	return payload(event, job, "")
}

// ChangedPayload returns the verdict.changed body: Payload's, with the
// verdict the job had before the rescan in a last field,
// "previous_verdict".
func ChangedPayload(job *scan.Job, previous scan.Verdict) ([]byte, error) {
	if previous == "" {
		return nil, errors.New("notify: payload: verdict.changed without a previous verdict")
	}
	return payload(EventVerdictChanged, job, previous)
}

// payload marshals job once and splices the extra fields around it:
// decoding into a map and encoding again would cost two more passes,
// sort the job's fields and lose the guarantees of Job.MarshalJSON.
func payload(event string, job *scan.Job, previous scan.Verdict) ([]byte, error) {
	if !validEvent(event) {
		return nil, fmt.Errorf("notify: payload: unknown event %q", event)
	}
	if job == nil {
		return nil, errors.New("notify: payload: nil job")
	}
	body, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("notify: payload for job %s: %w", job.ID, err)
	}
	// json.Marshal compacts a Marshaler's output, so the object's braces
	// are its first and last bytes.
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, fmt.Errorf("notify: payload for job %s: job JSON is not an object", job.ID)
	}
	fields := body[1 : len(body)-1]
	// Strings cannot fail to encode.
	name, _ := json.Marshal(event)
	var prev []byte
	if previous != "" {
		prev, _ = json.Marshal(previous)
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(name) + len(prev) + 32)
	b.WriteString(`{"event":`)
	b.Write(name)
	if len(fields) > 0 {
		b.WriteByte(',')
		b.Write(fields)
	}
	if prev != nil {
		b.WriteString(`,"previous_verdict":`)
		b.Write(prev)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Delivery is one notification to one URL: everything needed to attempt
// it again later, so that an outbox row can hold it as it is.
type Delivery struct {
	// ID identifies the delivery to the receiver (DeliveryHeader). It
	// stays the same on every attempt, so a receiver that saw it before
	// can drop the repeat.
	ID string
	// URL is the receiver's endpoint. It may hold credentials; errors
	// show it redacted.
	URL string
	// Event is the event name (EventHeader), as in Body's "event" field.
	Event string
	// Body is the JSON to send, usually from Payload.
	Body []byte
	// Attempt counts the attempts already made, 0 before the first.
	Attempt int
}

// NewDelivery returns a Delivery with a fresh ID and no attempts.
func NewDelivery(url, event string, body []byte) Delivery {
	return Delivery{ID: NewID(), URL: url, Event: event, Body: body}
}

// crockford is Crockford's base32 alphabet, as ULIDs use: no I, L, O or U,
// so IDs survive being read aloud or typed.
var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns a new delivery ID: 26 characters of Crockford base32 over
// a 48-bit millisecond timestamp and 80 random bits. IDs sort by creation
// time, which keeps an outbox index in insertion order, and two IDs
// collide only if 80 random bits do.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	// crypto/rand.Read never fails (it panics on a broken system).
	_, _ = rand.Read(b[6:])
	return crockford.EncodeToString(b[:])
}

// ShouldSend reports whether a finished job's result is to be sent: clean
// results only when reportClean is on (bucket-av-scanner's REPORT_CLEAN),
// anything that is not clean (infected, error, skipped, or no verdict at
// all) always, so that a failure is never kept quiet. A nil job is not
// sent.
func ShouldSend(job *scan.Job, reportClean bool) bool {
	if job == nil {
		return false
	}
	if job.Verdict == scan.Clean {
		return reportClean
	}
	return true
}

// ShouldSendEvent is ShouldSend for a given event. A verdict.changed is
// always sent: either its old or its new verdict is not clean, and a
// receiver told "infected" must hear that the object is now clean even
// when clean results are not reported.
func ShouldSendEvent(event string, job *scan.Job, reportClean bool) bool {
	if job == nil {
		return false
	}
	if event == EventVerdictChanged {
		return true
	}
	return ShouldSend(job, reportClean)
}
