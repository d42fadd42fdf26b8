package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecode(t *testing.T) {
	b, err := EncodeMessage(Message{JobID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Attempt: 3, Final: true})
	if err != nil {
		t.Fatalf("EncodeMessage: %v", err)
	}
	// The wire format is a contract with other processes (and versions):
	// pin it.
	if got, want := string(b), `{"v":1,"job_id":"01JD6Q3K8M4Z7X2V9B1N5T0RCE"}`; got != want {
		t.Errorf("EncodeMessage: got %s, want %s", got, want)
	}
	m, err := DecodeMessage(b)
	if err != nil {
		t.Fatalf("DecodeMessage: %v", err)
	}
	if want := (Message{JobID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE"}); m != want {
		t.Errorf("DecodeMessage: got %+v, want %+v", m, want)
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // job ID, or "" for ErrMalformed
	}{
		{"v1", `{"v":1,"job_id":"a"}`, "a"},
		{"unknown field ignored", `{"v":1,"job_id":"a","kind":"s3"}`, "a"},
		{"not json", `job-1`, ""},
		{"empty", ``, ""},
		{"no version", `{"job_id":"a"}`, ""},
		{"future version", `{"v":2,"job_id":"a"}`, ""},
		{"no job id", `{"v":1}`, ""},
		{"space in job id", `{"v":1,"job_id":"a b"}`, ""},
		{"control in job id", `{"v":1,"job_id":"a\u0000"}`, ""},
		{"long job id", `{"v":1,"job_id":"` + strings.Repeat("a", maxJobIDLen+1) + `"}`, ""},
		{"array", `[1]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tt.in))
			if tt.want == "" {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("got %+v, %v; want %v", m, err, ErrMalformed)
				}
				return
			}
			if err != nil || m.JobID != tt.want {
				t.Errorf("got %+v, %v; want job %q", m, err, tt.want)
			}
		})
	}
}

func TestEncodeMessageRefusesBadIDs(t *testing.T) {
	for _, id := range []string{"", "a b", "a\nb", "a\xb2", strings.Repeat("x", maxJobIDLen+1)} {
		if _, err := EncodeMessage(Message{JobID: id}); !errors.Is(err, ErrMalformed) {
			t.Errorf("EncodeMessage(%q): got %v, want %v", id, err, ErrMalformed)
		}
	}
}

func TestStatsDepth(t *testing.T) {
	if got := (Stats{Pending: 3, InFlight: 2, Redelivered: 1}).Depth(); got != 5 {
		t.Errorf("Depth: got %d, want 5", got)
	}
}

func TestRedeliveryDelay(t *testing.T) {
	r := Redelivery{Backoff: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}}
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 3 * time.Second}, {9, 3 * time.Second}} {
		if got := r.Delay(tt.attempt); got != tt.want {
			t.Errorf("Delay(%d): got %s, want %s", tt.attempt, got, tt.want)
		}
	}
	if got := (Redelivery{}).Delay(1); got != 0 {
		t.Errorf("Delay without steps: got %s, want 0", got)
	}
}
