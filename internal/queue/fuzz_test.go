package queue

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecodeMessage checks the wire format on any input, tried both as a
// message body and as a job ID:
//
//   - a body DecodeMessage refuses is ErrMalformed (so the consume loop
//     terminates it) and gives the zero Message;
//   - a body it accepts names a job ID EncodeMessage accepts (non-empty,
//     bounded, UTF-8 text without spaces or control characters), carries
//     no Attempt or Final (the queue sets those), and re-encodes to a body
//     that decodes to the same message;
//   - a job ID EncodeMessage accepts comes back from DecodeMessage byte
//     for byte, so a worker is never handed some other job's ID; one it
//     refuses is ErrMalformed.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"job_id":"01JD6Q3K8M4Z7X2V9B1N5T0RCE"}`, `{"v":1,"job_id":"a"}`,
		`{"v":1,"job_id":"a","kind":"s3"}`, `{"V":1,"JOB_ID":"a"}`, `{"v":1,"job_id":"a","job_id":"b"}`,
		`job-1`, ``, `null`, `{"job_id":"a"}`, `{"v":2,"job_id":"a"}`, `{"v":1}`, `{"v":1.0,"job_id":"a"}`,
		`{"v":1,"job_id":"a b"}`, `{"v":1,"job_id":"a\u0000"}`, `{"v":1,"job_id":"\u00e9\ufffd"}`,
		`{"v":1,"job_id":"` + strings.Repeat("a", maxJobIDLen+1) + `"}`, `[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if m != (Message{}) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeMessage(%q) = %+v, %v; want the zero message and ErrMalformed", b, m, err)
			}
		} else {
			if m.Attempt != 0 || m.Final {
				t.Fatalf("DecodeMessage(%q) = %+v: the body set Attempt or Final", b, m)
			}
			checkGoodJobID(t, m.JobID)
			enc, err := EncodeMessage(m)
			if err != nil {
				t.Fatalf("DecodeMessage(%q) = %+v, which EncodeMessage refuses: %v", b, m, err)
			}
			if again, err := DecodeMessage(enc); err != nil || again != m {
				t.Fatalf("DecodeMessage(EncodeMessage(%+v) = %s) = %+v, %v; want it back", m, enc, again, err)
			}
		}

		// b as a job ID.
		id := string(b)
		enc, err := EncodeMessage(Message{JobID: id, Attempt: 2, Final: true})
		if err != nil {
			if enc != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("EncodeMessage(job %q) = %q, %v; want nil and ErrMalformed", id, enc, err)
			}
			return
		}
		checkGoodJobID(t, id)
		if got, err := DecodeMessage(enc); err != nil || got != (Message{JobID: id}) {
			t.Fatalf("DecodeMessage(EncodeMessage(job %q) = %s) = %+v, %v; want job %q", id, enc, got, err, id)
		}
	})
}

// checkGoodJobID fails unless id is one that may travel: non-empty, at
// most maxJobIDLen bytes, UTF-8 text of printable characters without
// spaces.
func checkGoodJobID(t *testing.T, id string) {
	t.Helper()
	if id == "" || len(id) > maxJobIDLen || !utf8.ValidString(id) {
		t.Fatalf("job ID %q (%d bytes) accepted: want 1 to %d bytes of UTF-8", id, len(id), maxJobIDLen)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			t.Fatalf("job ID %q accepted with %U", id, r)
		}
	}
}
