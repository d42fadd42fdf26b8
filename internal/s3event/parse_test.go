package s3event

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describe renders what Parse returned, for the golden files.
func describe(events []Event, err error) string {
	var sb strings.Builder
	if err != nil {
		fmt.Fprintf(&sb, "error: %v\n", err)
		var re *RecordError
		if errors.As(err, &re) {
			fmt.Fprintf(&sb, "record: %d\n", re.Index)
		}
	}
	fmt.Fprintf(&sb, "events: %d\n", len(events))
	for i, e := range events {
		fmt.Fprintf(&sb, "\n[%d]\n", i)
		fmt.Fprintf(&sb, "name: %s\ntype: %s\ntriggers_scan: %t\nremoved: %t\n", e.Name, e.Type(), e.TriggersScan(), e.Removed())
		fmt.Fprintf(&sb, "bucket: %s\nkey: %q\nsize: %d\netag: %s\nversion_id: %s\nsequencer: %s\n",
			e.Bucket, e.Key, e.Size, e.ETag, e.VersionID, e.Sequencer)
		t := ""
		if !e.Time.IsZero() {
			t = e.Time.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&sb, "time: %s\nsource: %s\nregion: %s\ncontent_type: %s\nprincipal: %s\nsource_ip: %s\nrequest_id: %s\n",
			t, e.Source, e.Region, e.ContentType, e.Principal, e.SourceIP, e.RequestID)
		fmt.Fprintf(&sb, "dedupe_key: %s\n", e.DedupeKey())
	}
	return sb.String()
}

// TestParseGolden parses every testdata/events/*.json and compares the
// result with the .golden file beside it. Regenerate with -update.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d fixtures, want at least 20", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			events, perr := Parse(b)
			if strings.HasPrefix(name, "bad-") != (perr != nil) {
				t.Errorf("Parse(%s): error %v; fixtures named bad-* must fail and only they", name, perr)
			}
			got := describe(events, perr)
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Parse(%s):\ngot:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func mustParseFile(t *testing.T, name string) []Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	events, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return events
}

// TestParseFields pins the fields the rest of lazaret relies on, so that a
// careless -update cannot bless a regression in them.
func TestParseFields(t *testing.T) {
	tests := []struct {
		file    string
		index   int
		bucket  string
		key     string
		etag    string
		version string
		size    int64
		scan    bool
	}{
		{"minio-put.json", 0, "storagebucket", "incoming/a b+c", "44d88612fea8a8f36de82e1278abb02f", "", 68, true},
		{"minio-puttagging.json", 0, "storagebucket", "incoming/a b+c", "44d88612fea8a8f36de82e1278abb02f", "", 68, false},
		{"minio-multipart.json", 0, "storagebucket", "big/disk image.iso", "9b2cf535f27731c974343645a3985328-16", "7e2d2a0c-5b1f-4e7c-9a62-3d2f1c0b9e8d", 268435456, true},
		{"minio-delete.json", 0, "storagebucket", "incoming/a b+c", "", "", 0, false},
		{"minio-put-unicode.json", 0, "storagebucket", "in/über café/файл 100%.txt", "5d41402abc4b2a76b9719d911017c592", "", 5, true},
		{"minio-copy.json", 0, "storagebucket", "copies/x.bin", "b026324c6904b2a9cb4b88d6d61c81d1", "", 100, true},
		{"minio-putretention.json", 0, "storagebucket", "locked/a.bin", "b026324c6904b2a9cb4b88d6d61c81d1", "0b9e8d7c-1111-2222-3333-444455556666", 100, false},
		{"minio-putlegalhold.json", 0, "storagebucket", "locked/a.bin", "b026324c6904b2a9cb4b88d6d61c81d1", "0b9e8d7c-1111-2222-3333-444455556666", 100, false},
		{"minio-wrapper-only.json", 0, "storagebucket", "incoming/a b+c", "", "", 0, true},
		{"aws-put.json", 0, "storagebucket", "uploads/2026/Quarterly report (final).pdf", "d41d8cd98f00b204e9800998ecf8427e", "", 1048576, true},
		{"aws-batch-3.json", 0, "ingest-prod", "a+b/c d.txt", "6f5902ac237024bdd0c176cb93063dc4", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", 12, true},
		{"aws-batch-3.json", 1, "ingest-prod", "videos/raw/clip 001.mp4", "1a2b3c4d5e6f708192a3b4c5d6e7f809-640", "Wn2Q0u8dXo0bTzF3nGg5T7s1e9kqv8mA", 5368709120, true},
		{"aws-batch-3.json", 2, "ingest-prod", "old/stale.bin", "", "x9oTxbzPLn9oPz2e7bmHq9cCgVUxYB5N", 0, false},
		{"aws-copy-unicode.json", 0, "docs-jp", "契約書/über café ✓.docx", "0cc175b9c0f1b6a831c399e269772661", "", 48213, true},
		{"aws-tagging.json", 0, "storagebucket", "uploads/2026/Quarterly report (final).pdf", "d41d8cd98f00b204e9800998ecf8427e", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.file, tt.index), func(t *testing.T) {
			events := mustParseFile(t, tt.file)
			if tt.index >= len(events) {
				t.Fatalf("got %d events, want more than %d", len(events), tt.index)
			}
			e := events[tt.index]
			if e.Bucket != tt.bucket || e.Key != tt.key || e.ETag != tt.etag || e.VersionID != tt.version || e.Size != tt.size {
				t.Errorf("got bucket=%q key=%q etag=%q version=%q size=%d, want %q %q %q %q %d",
					e.Bucket, e.Key, e.ETag, e.VersionID, e.Size, tt.bucket, tt.key, tt.etag, tt.version, tt.size)
			}
			if got := e.TriggersScan(); got != tt.scan {
				t.Errorf("TriggersScan() = %t, want %t (event %s)", got, tt.scan, e.Name)
			}
		})
	}
}

func TestParseZeroEvents(t *testing.T) {
	for _, f := range []string{"aws-test-event.json", "empty-records.json"} {
		t.Run(f, func(t *testing.T) {
			if events := mustParseFile(t, f); len(events) != 0 {
				t.Errorf("got %d events, want 0", len(events))
			}
		})
	}
}

func TestTriggersScan(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"s3:ObjectCreated:Put", true},
		{"ObjectCreated:Put", true},
		{"s3:ObjectCreated:Post", true},
		{"ObjectCreated:Post", true},
		{"s3:ObjectCreated:Copy", true},
		{"ObjectCreated:Copy", true},
		{"s3:ObjectCreated:CompleteMultipartUpload", true},
		{"ObjectCreated:CompleteMultipartUpload", true},
		{"s3:ObjectCreated:PutTagging", false},
		{"s3:ObjectCreated:DeleteTagging", false},
		{"s3:ObjectCreated:PutRetention", false},
		{"s3:ObjectCreated:PutLegalHold", false},
		{"s3:ObjectCreated:*", false},
		{"ObjectTagging:Put", false},
		{"ObjectTagging:Delete", false},
		{"ObjectAcl:Put", false},
		{"s3:ObjectAccessed:Get", false},
		{"s3:ObjectRemoved:Delete", false},
		{"ObjectRemoved:DeleteMarkerCreated", false},
		{"s3:ObjectRestore:Completed", false},
		{"s3:Replication:OperationReplicatedAfterThreshold", false},
		{"LifecycleExpiration:Delete", false},
		{"s3:BucketCreated", false},
		{"s3:TestEvent", false},
		{"s3:objectcreated:put", false}, // names are case-sensitive
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Event{Name: tt.name}).TriggersScan(); got != tt.want {
				t.Errorf("TriggersScan(%q) = %t, want %t", tt.name, got, tt.want)
			}
		})
	}
}

func TestType(t *testing.T) {
	for in, want := range map[string]string{
		"ObjectCreated:Put":    "s3:ObjectCreated:Put",
		"s3:ObjectCreated:Put": "s3:ObjectCreated:Put",
		"":                     "",
	} {
		if got := (Event{Name: in}).Type(); got != want {
			t.Errorf("Type(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDedupeKey(t *testing.T) {
	base := Event{Name: "s3:ObjectCreated:Put", Bucket: "b", Key: "k", ETag: "e", Sequencer: "s", Size: 1}
	key := base.DedupeKey()
	if len(key) != 64 {
		t.Fatalf("DedupeKey() = %q, want 64 hex digits", key)
	}
	same := base
	same.Name = "ObjectCreated:Put"
	same.Time = time.Now()
	same.Principal = "someone"
	same.RequestID = "other"
	if got := same.DedupeKey(); got != key {
		t.Errorf("redelivery with other metadata: DedupeKey() = %s, want %s", got, key)
	}

	differ := map[string]func(*Event){
		"bucket":    func(e *Event) { e.Bucket = "b2" },
		"key":       func(e *Event) { e.Key = "k2" },
		"etag":      func(e *Event) { e.ETag = "e2" },
		"sequencer": func(e *Event) { e.Sequencer = "s2" },
		"version":   func(e *Event) { e.VersionID = "v1" },
		// Field boundaries: "b"+"k1" must not equal "bk"+"1".
		"shifted": func(e *Event) { e.Bucket, e.Key = "bk", "" },
	}
	for name, mutate := range differ {
		t.Run(name, func(t *testing.T) {
			e := base
			mutate(&e)
			if got := e.DedupeKey(); got == key {
				t.Errorf("DedupeKey() unchanged after changing %s", name)
			}
		})
	}

	// With a version, the ETag no longer counts: the version names the
	// content.
	v1 := base
	v1.VersionID = "v1"
	v2 := v1
	v2.ETag = "other"
	if v1.DedupeKey() != v2.DedupeKey() {
		t.Error("versioned events with different ETags got different keys")
	}
}

// TestDedupeKeyPinned pins the key for a known event; stores keep these
// keys, so changing the format is a migration, not a refactor.
func TestDedupeKeyPinned(t *testing.T) {
	e := Event{Bucket: "storagebucket", Key: "incoming/a b+c", ETag: "44d88612fea8a8f36de82e1278abb02f", Sequencer: "1898F6C2A3C1E2F0"}
	const want = "75e4f0b1905df32f2d87ac296a43bcc628d1a4f0bb9d12904a86c69bf606b3ea"
	if got := e.DedupeKey(); got != want {
		t.Errorf("DedupeKey() = %s, want %s", got, want)
	}
}

// TestPutTaggingSameSequencer is MinIO's behaviour from INFRA.md: the tag
// write fires s3:ObjectCreated:PutTagging with the Put's sequencer. Only
// the Put may trigger a scan.
func TestPutTaggingSameSequencer(t *testing.T) {
	put := mustParseFile(t, "minio-put.json")[0]
	tag := mustParseFile(t, "minio-puttagging.json")[0]
	if put.Sequencer != tag.Sequencer {
		t.Fatalf("fixtures: sequencers %s and %s differ", put.Sequencer, tag.Sequencer)
	}
	if !put.TriggersScan() || tag.TriggersScan() {
		t.Errorf("TriggersScan: put %t, tagging %t; want true, false", put.TriggersScan(), tag.TriggersScan())
	}
}

func TestParseSizeLimit(t *testing.T) {
	small := []byte(`{"Records":[]}`)
	big := append([]byte(`{"Records":[]}`), make([]byte, MaxBodySize)...)
	for i := len(small); i < len(big); i++ {
		big[i] = ' '
	}

	if _, err := Parse(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse(%d bytes): got %v, want ErrTooLarge", len(big), err)
	}
	if _, err := ParseReader(strings.NewReader(string(big))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseReader(%d bytes): got %v, want ErrTooLarge", len(big), err)
	}
	if _, err := Parse(small); err != nil {
		t.Errorf("Parse(small): %v", err)
	}

	// An endless body: ParseReader must stop at the limit rather than
	// read forever.
	r := &countingReader{}
	if _, err := (Parser{MaxBytes: 4096}).ParseReader(r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ParseReader(endless): got %v, want ErrTooLarge", err)
	}
	if r.n > 4096+1 {
		t.Errorf("ParseReader read %d bytes of an endless body, want at most %d", r.n, 4096+1)
	}

	// Exactly the limit is allowed.
	exact := []byte(`{"Records":[]}` + strings.Repeat(" ", 100-len(`{"Records":[]}`)))
	if _, err := (Parser{MaxBytes: 100}).Parse(exact); err != nil {
		t.Errorf("Parse(exactly the limit): %v", err)
	}
}

// countingReader is an endless stream of spaces that counts what it gave.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestParseReaderError(t *testing.T) {
	if _, err := ParseReader(errReader{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %v, want io.ErrUnexpectedEOF wrapped", err)
	}
}

func TestRawKeys(t *testing.T) {
	// versitygw sends keys as they are, with quoted ETags.
	body := []byte(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"vgw"},"object":{"key":"dir/a+b 100%.txt","size":3,"eTag":"\"ABCDEF\""}}}]}`)
	events, err := Parser{RawKeys: true}.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events[0].Key, "dir/a+b 100%.txt"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	if got, want := events[0].ETag, "abcdef"; got != want {
		t.Errorf("etag = %q, want %q", got, want)
	}
	// The default parser decodes, and refuses this key's bare "%".
	if _, err := Parse(body); err == nil {
		t.Error("Parse of a raw key with a bare %: got no error")
	}
}

func TestRecordErrorIndex(t *testing.T) {
	tests := []struct {
		file  string
		index int
		want  string
	}{
		{"bad-batch-third-null.json", 2, "missing eventName"},
		{"bad-missing-bucket.json", 0, "missing s3.bucket.name"},
		{"bad-missing-key.json", 0, "missing s3.object.key"},
		{"bad-key-nul.json", 0, "NUL"},
		{"bad-key-too-long.json", 0, "over 1024"},
		{"bad-key-escape.json", 0, "invalid URL escape"},
		{"bad-key-utf8.json", 0, "UTF-8"},
		{"bad-size-negative.json", 0, "negative"},
		{"bad-size-string.json", 0, "size"},
		{"bad-event-time.json", 0, "eventTime"},
		{"bad-bucket-slash.json", 0, "s3.bucket.name"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "events", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			events, err := Parse(b)
			if events != nil {
				t.Errorf("got %d events with an error, want none", len(events))
			}
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RecordError", err)
			}
			if re.Index != tt.index {
				t.Errorf("index = %d, want %d", re.Index, tt.index)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || !strings.Contains(msg, fmt.Sprintf("record %d", tt.index)) {
				t.Errorf("error %q does not say %q and record %d", msg, tt.want, tt.index)
			}
		})
	}
}
