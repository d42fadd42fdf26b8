package jobcodec

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// FuzzDecodeCursor checks the cursor's two promises on any input: a
// cursor EncodeCursor made for a job ID the store can hold gives that ID
// back, and a string EncodeCursor did not make (cut short, edited,
// garbage) is store.ErrInvalid, never a listing from some other place.
// The fuzzed string is tried both as a job ID and as a cursor.
func FuzzDecodeCursor(f *testing.F) {
	valid := EncodeCursor("01JD6Q3K8M4Z7X2V9B1N5T0RCE")
	for _, s := range []string{
		valid, EncodeCursor("a"), EncodeCursor("ç/ü"), EncodeCursor("ab"),
		"01JD6Q3K8M4Z7X2V9B1N5T0RCE", "",
		"not a cursor!", "Zm9vYmFy", valid[:len(valid)/2], valid + "%%", valid + "=",
		EncodeCursor(""), EncodeCursor("a\x00"), EncodeCursor("\xff"),
		// Decode to a good cursor, but EncodeCursor did not make them:
		// base64 skips CR and LF, and the unused low bits of the last
		// character ("ajE6YU9qyGs" is EncodeCursor("a")).
		valid[:10] + "\n" + valid[10:], valid + "\r\n", "ajE6YU9qyGt",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// s as a job ID: only IDs the store keeps as they are (non-empty
		// UTF-8 text without NUL) come back.
		id, err := DecodeCursor(EncodeCursor(s))
		if s != "" && Clean(s) {
			if err != nil || id != s {
				t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v; want %q", s, id, err, s)
			}
		} else if id != "" || !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v; want store.ErrInvalid", s, id, err)
		}

		// s as a cursor.
		id, err = DecodeCursor(s)
		if err != nil {
			if id != "" || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("DecodeCursor(%q) = %q, %v; want \"\" and store.ErrInvalid", s, id, err)
			}
			return
		}
		if id == "" || !Clean(id) {
			t.Fatalf("DecodeCursor(%q) = %q: want a non-empty, clean job ID", s, id)
		}
		// Accepted means EncodeCursor made it: one cursor per position.
		if again := EncodeCursor(id); again != s {
			t.Fatalf("DecodeCursor(%q) = %q, but EncodeCursor(%q) = %q: accepted a cursor EncodeCursor did not make", s, id, id, again)
		}
	})
}

// FuzzDecodeList checks DecodeList for the three element types the
// drivers read back (findings, engine runs, actions): a failure returns a
// nil slice, a success a non-nil one that EncodeList writes in a form
// DecodeList reads back to the same value, and writing that again gives
// the same bytes.
func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, ``, `[null]`, `{}`, `"x"`, `[1]`,
		`[{"engine":"clamav","signature":"Eicar-Test-Signature","path":"a/b.zip"}]`,
		`[{"name":"clamav","version":"ClamAV 1.4.6/27480","verdict":"clean","duration_ms":12}]`,
		`[{"name":"x","verdict":"error","reason":"timeout","detail":"d","duration_ms":-1}]`,
		`["quarantine","tag"]`, `["a\u0000b","\ud800"]`, "[\"\xff\"]",
		`[{"duration_ms":1e3}]`, `[{"duration_ms":9223372036854775808}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkList[scan.Finding](t, b)
		checkList[scan.EngineRun](t, b)
		checkList[string](t, b)
	})
}

func checkList[T any](t *testing.T, b []byte) {
	t.Helper()
	got, err := DecodeList[T](b)
	if err != nil {
		if got != nil {
			t.Fatalf("DecodeList[%T](%q) = %v, %v; want nil with the error", *new(T), b, got, err)
		}
		return
	}
	if got == nil {
		t.Fatalf("DecodeList[%T](%q) = nil; want a non-nil slice", *new(T), b)
	}
	enc, err := EncodeList(got)
	if err != nil {
		t.Fatalf("EncodeList(%#v): %v", got, err)
	}
	again, err := DecodeList[T](enc)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("DecodeList(EncodeList(%#v) = %s) = %#v, %v; want it back", got, enc, again, err)
	}
	if enc2, _ := EncodeList(again); !bytes.Equal(enc2, enc) {
		t.Fatalf("EncodeList is not stable: %s, then %s", enc, enc2)
	}
}

// FuzzDecodeSource checks DecodeSource: a failure returns the zero
// Source, a success one that EncodeSource writes in a form DecodeSource
// reads back to the same value. It also checks that any source whose
// text went through CleanSource, as the drivers store it, survives
// EncodeSource and DecodeSource unchanged.
func FuzzDecodeSource(f *testing.F) {
	for _, s := range []string{
		`{"kind":"upload"}`,
		`{"kind":"s3","bucket":"uploads","key":"a b/ç.txt","version_id":"v1","etag":"\"44d8\""}`,
		`{"kind":"file","path":"/srv/a"}`, `{"kind":"proxy","url":"https://example.com/a?b=c","engine":"clamav"}`,
		`{}`, `null`, ``, `[]`, `{"kind":1}`, `{"KIND":"upload","Kind":"s3"}`, `{"kind":"\u0000\ud800"}`,
		"{\"kind\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeSource(b)
		if err != nil {
			if got != (scan.Source{}) {
				t.Fatalf("DecodeSource(%q) = %+v, %v; want the zero source with the error", b, got, err)
			}
		} else {
			roundTripSource(t, got)
		}

		// b as the text of every field.
		s := string(b)
		half := s[:len(s)/2]
		roundTripSource(t, CleanSource(scan.Source{Kind: s, Path: half, URL: s, Bucket: half,
			Key: s, VersionID: half, ETag: s, Engine: strings.ToUpper(half)}))
	})
}

func roundTripSource(t *testing.T, src scan.Source) {
	t.Helper()
	enc, err := EncodeSource(src)
	if err != nil {
		t.Fatalf("EncodeSource(%+v): %v", src, err)
	}
	again, err := DecodeSource(enc)
	if err != nil || again != src {
		t.Fatalf("DecodeSource(EncodeSource(%+v) = %s) = %+v, %v; want it back", src, enc, again, err)
	}
}
