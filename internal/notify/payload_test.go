package notify

import (
	"bytes"
	"encoding/json"
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

func TestPayloadErrors(t *testing.T) {
	if _, err := Payload("scan.done", testJob(scan.Clean)); err == nil || !strings.Contains(err.Error(), "scan.done") {
		t.Errorf("unknown event: got %v, want an error naming it", err)
	}
	if _, err := Payload(EventScanCompleted, nil); err == nil {
		t.Error("nil job: got no error")
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
