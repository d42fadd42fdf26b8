package s3event

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that a failed parse returns no
// events, and that every event it returns names an object S3 could hold.
// The seed corpus is testdata/fuzz/FuzzParse/ (a copy of the fixtures).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%2Bc","size":1,"eTag":"\"AB\""}}}]}`))
	f.Add([]byte(`{"EventName":"s3:ObjectCreated:Put","Key":"b/k"}`))
	f.Add([]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []Parser{{}, {RawKeys: true}} {
			events, err := p.Parse(b)
			if err != nil {
				if events != nil {
					t.Fatalf("got %d events and error %v", len(events), err)
				}
				continue
			}
			for i, e := range events {
				if e.Bucket == "" || e.Key == "" {
					t.Fatalf("event %d: bucket %q, key %q: want both non-empty", i, e.Bucket, e.Key)
				}
				if len(e.Key) > MaxKeyLen || !utf8.ValidString(e.Key) || strings.IndexByte(e.Key, 0) >= 0 {
					t.Fatalf("event %d: invalid key %q accepted", i, e.Key)
				}
				if strings.ContainsAny(e.Bucket, "/\x00") {
					t.Fatalf("event %d: invalid bucket %q accepted", i, e.Bucket)
				}
				if e.Size < 0 {
					t.Fatalf("event %d: negative size %d", i, e.Size)
				}
				if k := e.DedupeKey(); len(k) != 64 {
					t.Fatalf("event %d: DedupeKey %q", i, k)
				}
				// Encoding the decoded key the way S3 does and parsing
				// again must give the same key back.
				if !p.RawKeys {
					again := roundTrip(t, e)
					if again.Key != e.Key || again.Bucket != e.Bucket {
						t.Fatalf("round trip: key %q -> %q", e.Key, again.Key)
					}
				}
			}
			// Parsing is a pure function of the bytes.
			events2, err2 := p.Parse(b)
			if err2 != nil || !reflect.DeepEqual(events, events2) {
				t.Fatalf("second parse differs: %v", err2)
			}
		}
	})
}

// roundTrip writes e as a minimal AWS record with a form-encoded key and
// parses it back.
func roundTrip(t *testing.T, e Event) Event {
	t.Helper()
	doc := map[string]any{"Records": []any{map[string]any{
		"eventName": "ObjectCreated:Put",
		"s3": map[string]any{
			"bucket": map[string]any{"name": e.Bucket},
			"object": map[string]any{"key": url.QueryEscape(e.Key)},
		},
	}}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	events, err := Parse(b)
	if err != nil || len(events) != 1 {
		t.Fatalf("round trip of key %q: %d events, %v", e.Key, len(events), err)
	}
	return events[0]
}
