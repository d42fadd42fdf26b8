package notify

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

func testJob(v scan.Verdict) *scan.Job {
	return &scan.Job{
		ID:      "01JNB6K5ZP8Y3F9W2Q4R7T1V0X",
		Status:  scan.Done,
		Verdict: v,
		Name:    "incoming/a b+c",
		Size:    68,
		SHA256:  "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
		Source:  scan.Source{Kind: "s3", Bucket: "storagebucket", Key: "incoming/a b+c", ETag: "44d88612fea8a8f36de82e1278abb02f"},
		Findings: []scan.Finding{
			{Engine: "clamav", Signature: "Eicar-Signature"},
		},
		CreatedAt: time.Date(2026, 3, 2, 11, 5, 42, 0, time.UTC),
	}
}

func TestPayload(t *testing.T) {
	for _, event := range []string{EventScanCompleted, EventVerdictChanged} {
		t.Run(event, func(t *testing.T) {
			job := testJob(scan.Infected)
			b, err := Payload(event, job)
			if err != nil {
				t.Fatal(err)
			}
			if prefix := `{"event":"` + event + `","id":"` + job.ID + `"`; !bytes.HasPrefix(b, []byte(prefix)) {
				t.Errorf("payload starts %.60s, want %s", b, prefix)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("payload is not JSON: %v\n%s", err, b)
			}
			jobJSON, _ := json.Marshal(job)
			var want map[string]any
			_ = json.Unmarshal(jobJSON, &want)
			want["event"] = event
			gotKeys, wantKeys := keys(got), keys(want)
			if strings.Join(gotKeys, ",") != strings.Join(wantKeys, ",") {
				t.Errorf("fields %v, want %v", gotKeys, wantKeys)
			}
			if got["verdict"] != "infected" || got["engines"] == nil {
				t.Errorf("verdict %v, engines %v; want infected and [] (job JSON's empty lists)", got["verdict"], got["engines"])
			}
		})
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// topKeys returns the top-level keys of a JSON object, in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	var ks []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON: %v: %s", err, b)
		}
		ks = append(ks, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("bad JSON: %v: %s", err, b)
		}
	}
	return ks
}

// TestPayloadKeys pins the fields receivers see, in order: the event,
// the job as the API shows it, and for verdict.changed the previous
// verdict last.
func TestPayloadKeys(t *testing.T) {
	jobKeys := []string{"id", "status", "verdict", "reason", "name", "size", "sha256", "source",
		"findings", "engines", "cached", "actions", "error", "attempts", "created_at"}
	completed, err := Payload(EventScanCompleted, testJob(scan.Clean))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := topKeys(t, completed), append([]string{"event"}, jobKeys...); !slices.Equal(got, want) {
		t.Errorf("scan.completed keys %v, want %v", got, want)
	}
	changed, err := ChangedPayload(testJob(scan.Infected), scan.Clean)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{"event"}, jobKeys...), "previous_verdict")
	if got := topKeys(t, changed); !slices.Equal(got, want) {
		t.Errorf("verdict.changed keys %v, want %v", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(changed, &m); err != nil {
		t.Fatal(err)
	}
	if m["event"] != EventVerdictChanged || m["verdict"] != "infected" || m["previous_verdict"] != "clean" {
		t.Errorf("event %v, verdict %v, previous_verdict %v; want verdict.changed, infected, clean",
			m["event"], m["verdict"], m["previous_verdict"])
	}
}

// TestChangedPayloadMatchesReencoding: splicing "previous_verdict" in
// gives the same fields and values as the former way, decoding the
// scan.completed-style body into a map, adding the field and encoding it
// again.
func TestChangedPayloadMatchesReencoding(t *testing.T) {
	job := testJob(scan.Clean)
	job.Name = `<odd> & "quoted" é`
	job.Engines = []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Clean, DurationMS: 3}}
	finished := job.CreatedAt.Add(4 * time.Millisecond)
	job.FinishedAt = &finished
	got, err := ChangedPayload(job, scan.Infected)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Payload(EventVerdictChanged, job)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		t.Fatal(err)
	}
	m["previous_verdict"] = scan.Infected
	old, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var gotV, oldV any
	if err := json.Unmarshal(got, &gotV); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, got)
	}
	_ = json.Unmarshal(old, &oldV)
	if !reflect.DeepEqual(gotV, oldV) {
		t.Errorf("got\n%s\nwant the same fields as\n%s", got, old)
	}
}

func TestPayloadErrors(t *testing.T) {
	if _, err := Payload("scan.done", testJob(scan.Clean)); err == nil || !strings.Contains(err.Error(), "scan.done") {
		t.Errorf("unknown event: got %v, want an error naming it", err)
	}
	if _, err := Payload(EventScanCompleted, nil); err == nil {
		t.Error("nil job: got no error")
	}
	if _, err := ChangedPayload(testJob(scan.Clean), ""); err == nil {
		t.Error("verdict.changed without a previous verdict: got no error")
	}
	if _, err := ChangedPayload(nil, scan.Clean); err == nil {
		t.Error("verdict.changed of a nil job: got no error")
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 {
		id := NewID()
		if len(id) != 26 || strings.ContainsAny(id, "ILOU") {
			t.Fatalf("NewID() = %q, want 26 Crockford base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %s", id)
		}
		seen[id] = true
	}
	a := NewID()
	time.Sleep(2 * time.Millisecond)
	if b := NewID(); b <= a {
		t.Errorf("IDs out of time order: %s then %s", a, b)
	}
	d := NewDelivery("http://x/", EventScanCompleted, []byte("{}"))
	if d.ID == "" || d.Attempt != 0 {
		t.Errorf("NewDelivery: ID %q, Attempt %d; want an ID and 0", d.ID, d.Attempt)
	}
}

func TestShouldSend(t *testing.T) {
	tests := []struct {
		verdict     scan.Verdict
		reportClean bool
		want        bool
	}{
		{scan.Clean, false, false},
		{scan.Clean, true, true},
		{scan.Infected, false, true},
		{scan.Infected, true, true},
		{scan.Error, false, true},
		{scan.Error, true, true},
		{scan.Skipped, false, true},
		{scan.Skipped, true, true},
		{"", false, true}, // no verdict is not clean
		{"bogus", false, true},
	}
	for _, tt := range tests {
		job := testJob(tt.verdict)
		if got := ShouldSend(job, tt.reportClean); got != tt.want {
			t.Errorf("ShouldSend(%q, report_clean=%t) = %t, want %t", tt.verdict, tt.reportClean, got, tt.want)
		}
		if got := ShouldSendEvent(EventScanCompleted, job, tt.reportClean); got != tt.want {
			t.Errorf("ShouldSendEvent(scan.completed, %q, %t) = %t, want %t", tt.verdict, tt.reportClean, got, tt.want)
		}
		if !ShouldSendEvent(EventVerdictChanged, job, tt.reportClean) {
			t.Errorf("ShouldSendEvent(verdict.changed, %q, %t) = false, want true", tt.verdict, tt.reportClean)
		}
	}
	if ShouldSend(nil, true) || ShouldSendEvent(EventVerdictChanged, nil, true) {
		t.Error("nil job: got true, want false")
	}
}
