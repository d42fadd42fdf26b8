// Package jobcodec holds what the store drivers must agree on so that one
// conformance suite holds for both: the checks on jobs, filters and cached
// verdicts, the JSON form of a job's lists, and the page cursor.
package jobcodec

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// EncodeList encodes a slice as a JSON array; nil is [].
func EncodeList[T any](v []T) ([]byte, error) {
	if len(v) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal(v)
}

// DecodeList decodes a JSON array. It never returns a nil slice, so that a
// job's JSON shows [] rather than null.
func DecodeList[T any](b []byte) ([]T, error) {
	out := []T{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// CheckNew checks a job for CreateJob. A status that is not a legal first
// status wraps store.ErrConflict.
func CheckNew(job *scan.Job) error {
	switch {
	case job == nil:
		return errors.New("nil job")
	case job.ID == "":
		return errors.New("job has no id")
	case !Clean(job.ID):
		return fmt.Errorf("job id %q is not valid UTF-8 text", job.ID)
	case job.CreatedAt.IsZero():
		return fmt.Errorf("job %s has no created_at", job.ID)
	}
	if err := scan.Transition(scan.StatusNew, job.Status); err != nil {
		return fmt.Errorf("job %s: %w: %w", job.ID, store.ErrConflict, err)
	}
	return CheckVerdict(job)
}

// CheckVerdict checks that a job's verdict is empty or one of the four.
func CheckVerdict(job *scan.Job) error {
	if job.Verdict != "" && !job.Verdict.Valid() {
		return fmt.Errorf("job %s: unknown verdict %q", job.ID, job.Verdict)
	}
	return nil
}

// CheckCached checks a verdict to cache: only clean and infected are
// cached (an error must be retried; a size limit belongs to a
// configuration, not to content).
func CheckCached(v *scan.CachedVerdict) error {
	switch {
	case v == nil:
		return errors.New("nil verdict")
	case v.SHA256 == "" || v.EnginesKey == "":
		return errors.New("verdict needs sha256 and engines key")
	case !Clean(v.SHA256) || !Clean(v.EnginesKey) || !Clean(v.JobID):
		return errors.New("verdict sha256, engines key and job id must be UTF-8 text")
	case v.Verdict != scan.Clean && v.Verdict != scan.Infected:
		return fmt.Errorf("verdict %q of %s is not cacheable: only clean and infected are", v.Verdict, v.SHA256)
	}
	return nil
}

// CheckJobVerdict checks the verdict that SaveJob caches for a job: a
// cacheable verdict (see CheckCached) that is the job's own, for its
// content, once it is done.
func CheckJobVerdict(job *scan.Job, v *scan.CachedVerdict) error {
	if err := CheckCached(v); err != nil {
		return err
	}
	if job.Status != scan.Done || v.SHA256 != job.SHA256 || v.Verdict != job.Verdict {
		return fmt.Errorf("cached verdict %s %s is not job %s's (%s %s, %s)",
			v.SHA256, v.Verdict, job.ID, job.SHA256, job.Verdict, job.Status)
	}
	return nil
}

// CheckDelivery checks a delivery for AddDelivery and returns the time to
// store as its creation: CreatedAt, or now when it is zero.
func CheckDelivery(d *store.Delivery) (time.Time, error) {
	if d == nil || d.ID == "" || d.Target == "" {
		return time.Time{}, errors.New("add delivery: id and target are required")
	}
	if d.CreatedAt.IsZero() {
		return time.Now(), nil
	}
	return d.CreatedAt, nil
}

// Rows is what the drivers' result sets have in common (database/sql's
// *sql.Rows and pgx's Rows).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// CountByState reads "SELECT state, count(*) ... GROUP BY state" rows
// into counts by delivery state, every state present (zero if absent).
func CountByState(rows Rows) (map[string]int64, error) {
	out := map[string]int64{store.DeliveryPending: 0, store.DeliveryDelivered: 0, store.DeliveryFailed: 0}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// CheckFilter validates f and returns its page size and the ID to list
// after ("" for the first page). An unknown verdict or status, a negative
// limit or a cursor that EncodeCursor did not make is an error. A SHA256
// or Bucket that is not UTF-8 text is no error but matches nothing; see
// MatchesNothing.
func CheckFilter(f store.JobFilter) (limit int, after string, err error) {
	if f.Verdict != "" && !f.Verdict.Valid() {
		return 0, "", fmt.Errorf("%w: unknown verdict %q", store.ErrInvalid, f.Verdict)
	}
	switch f.Status {
	case "", scan.Queued, scan.Running, scan.Done:
	default:
		return 0, "", fmt.Errorf("%w: unknown status %q", store.ErrInvalid, f.Status)
	}
	switch {
	case f.Limit < 0:
		return 0, "", fmt.Errorf("%w: negative limit %d", store.ErrInvalid, f.Limit)
	case f.Limit == 0:
		limit = store.DefaultLimit
	default:
		limit = min(f.Limit, store.MaxLimit)
	}
	if f.Cursor != "" {
		if after, err = DecodeCursor(f.Cursor); err != nil {
			return 0, "", err
		}
	}
	return limit, after, nil
}

// cursorPrefix versions the cursor's form.
const cursorPrefix = "j1:"

// EncodeCursor returns the cursor that continues a listing after the job
// id: opaque to callers, the same for both drivers. It carries a CRC-32 so
// that a cursor cut short or edited is refused instead of silently
// listing from the wrong place.
func EncodeCursor(id string) string {
	b := []byte(cursorPrefix + id)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor returns the job ID a cursor continues after.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < len(cursorPrefix)+1+crc32.Size {
		return "", fmt.Errorf("%w: invalid cursor %q", store.ErrInvalid, c)
	}
	body, sum := b[:len(b)-crc32.Size], b[len(b)-crc32.Size:]
	id, ok := strings.CutPrefix(string(body), cursorPrefix)
	// The base64 decoder skips CR and LF and ignores the unused low bits
	// of the last character, so compare with the cursor EncodeCursor
	// makes: only that one is accepted.
	if !ok || binary.BigEndian.Uint32(sum) != crc32.ChecksumIEEE(body) ||
		!Clean(id) || EncodeCursor(id) != c {
		return "", fmt.Errorf("%w: invalid cursor %q", store.ErrInvalid, c)
	}
	return id, nil
}

// EncodeSource encodes a job's source as a JSON object.
func EncodeSource(s scan.Source) ([]byte, error) { return json.Marshal(s) }

// DecodeSource decodes a job's source.
func DecodeSource(b []byte) (scan.Source, error) {
	var s scan.Source
	err := json.Unmarshal(b, &s)
	return s, err
}

// CleanText makes s storable in both databases: invalid UTF-8 and NUL
// (which PostgreSQL's text and jsonb refuse) become U+FFFD. Names, keys
// and engine messages come from untrusted input, and a job must be
// stored whatever they hold.
func CleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Clean reports whether s is stored as it is (CleanText(s) == s).
func Clean(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// CleanJob returns a copy of job whose text fields went through
// CleanText. The ID, status and verdict are checked, not cleaned.
func CleanJob(job *scan.Job) *scan.Job {
	j := *job
	j.Reason = scan.Reason(CleanText(string(j.Reason)))
	j.Name, j.SHA256, j.Error = CleanText(j.Name), CleanText(j.SHA256), CleanText(j.Error)
	j.Source = CleanSource(j.Source)
	j.Findings = CleanFindings(j.Findings)
	j.Engines = CleanEngines(j.Engines)
	if j.Actions != nil {
		j.Actions = make([]string, len(job.Actions))
		for i, a := range job.Actions {
			j.Actions[i] = CleanText(a)
		}
	}
	return &j
}

// CleanSource returns src with its text cleaned.
func CleanSource(src scan.Source) scan.Source {
	for _, f := range []*string{&src.Kind, &src.Path, &src.URL, &src.Bucket, &src.Key,
		&src.VersionID, &src.ETag, &src.Engine} {
		*f = CleanText(*f)
	}
	return src
}

// CleanFindings returns a copy of fs with its text cleaned.
func CleanFindings(fs []scan.Finding) []scan.Finding {
	if fs == nil {
		return nil
	}
	out := make([]scan.Finding, len(fs))
	for i, f := range fs {
		out[i] = scan.Finding{Engine: CleanText(f.Engine), Signature: CleanText(f.Signature), Path: CleanText(f.Path)}
	}
	return out
}

// CleanEngines returns a copy of es with its text cleaned.
func CleanEngines(es []scan.EngineRun) []scan.EngineRun {
	if es == nil {
		return nil
	}
	out := make([]scan.EngineRun, len(es))
	for i, e := range es {
		e.Name, e.Version, e.Detail = CleanText(e.Name), CleanText(e.Version), CleanText(e.Detail)
		e.Reason = scan.Reason(CleanText(string(e.Reason)))
		out[i] = e
	}
	return out
}

// MatchesNothing reports whether f selects no job whatever the store
// holds: its SHA256 or Bucket is text that CleanText would have changed,
// so no stored job has it. Drivers answer such a filter with an empty page
// instead of sending the database text it refuses.
func MatchesNothing(f store.JobFilter) bool { return !Clean(f.SHA256) || !Clean(f.Bucket) }

// Page makes a JobPage from up to limit+1 jobs read newest first: the
// extra one only says that there is a next page.
func Page(jobs []*scan.Job, limit int) store.JobPage {
	page := store.JobPage{Jobs: jobs}
	if page.Jobs == nil {
		page.Jobs = []*scan.Job{}
	}
	if len(page.Jobs) > limit {
		page.Jobs = page.Jobs[:limit]
		page.NextCursor = EncodeCursor(page.Jobs[limit-1].ID)
	}
	return page
}

// MinID returns the smallest job ID (ULID) that a job created at t can
// have: t's millisecond with zero entropy. Times before the Unix epoch
// give the smallest ID.
func MinID(t time.Time) string {
	var id ulid.ULID
	if t.UnixMilli() > 0 {
		_ = id.SetTime(ulid.Timestamp(t))
	}
	return id.String()
}
