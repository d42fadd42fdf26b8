package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestTransitionsEveryPair(t *testing.T) {
	all := []Status{StatusNew, Queued, Running, Done, "bogus"}
	legal := map[[2]Status]bool{
		{StatusNew, Queued}: true, {StatusNew, Running}: true, {StatusNew, Done}: true,
		{Queued, Running}: true, {Queued, Done}: true,
		{Running, Done}: true, {Running, Queued}: true, {Running, Running}: true,
		{Done, Queued}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := legal[[2]Status{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
			if err := Transition(from, to); (err == nil) != want {
				t.Errorf("Transition(%q, %q) = %v, want legal=%v", from, to, err, want)
			}
		}
	}
}

func TestNormalizeFailsClosed(t *testing.T) {
	f := []Finding{{Signature: "Eicar"}}
	for _, tc := range []struct {
		name        string
		r           Result
		err         error
		wantVerdict Verdict
		wantReason  Reason
	}{
		{"clean", Result{Verdict: Clean}, nil, Clean, ReasonNone},
		{"empty result", Result{}, nil, Error, ReasonEngineError},
		{"unknown verdict", Result{Verdict: "maybe"}, nil, Error, ReasonEngineError},
		{"clean with findings", Result{Verdict: Clean, Findings: f}, nil, Infected, ReasonNone},
		{"infected without findings", Result{Verdict: Infected}, nil, Infected, ReasonNone},
		{"error without reason", Result{Verdict: Error}, nil, Error, ReasonEngineError},
		{"skipped", Result{Verdict: Skipped, Reason: ReasonTooLarge}, nil, Skipped, ReasonTooLarge},
		{"plain error", Result{Verdict: Clean}, errors.New("boom"), Error, ReasonEngineError},
		{"deadline", Result{}, fmt.Errorf("read: %w", context.DeadlineExceeded), Error, ReasonTimeout},
		{"skip error", Result{}, Skipf(ReasonTooLarge, "size limit"), Skipped, ReasonTooLarge},
		{"reason error", Result{}, Errorf(ReasonEncrypted, "encrypted"), Error, ReasonEncrypted},
		{"found then failed", Result{Verdict: Infected, Findings: f}, errors.New("cut off"), Infected, ReasonNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Normalize("e", tc.r, tc.err)
			if got.Verdict != tc.wantVerdict || got.Reason != tc.wantReason {
				t.Errorf("got %s/%s, want %s/%s", got.Verdict, got.Reason, tc.wantVerdict, tc.wantReason)
			}
			for _, f := range got.Findings {
				if f.Engine != "e" {
					t.Errorf("finding not attributed: %+v", f)
				}
			}
			if got.Verdict == Infected && len(got.Findings) == 0 {
				t.Error("infected with no finding")
			}
		})
	}
}

func TestCombine(t *testing.T) {
	r := func(v Verdict, reason Reason) Result { return Result{Verdict: v, Reason: reason} }
	for _, tc := range []struct {
		name string
		in   []Result
		want Verdict
	}{
		{"nothing is not clean", nil, Error},
		{"all clean", []Result{r(Clean, ""), r(Clean, "")}, Clean},
		{"infected wins over error", []Result{r(Error, ReasonTimeout), r(Infected, "")}, Infected},
		{"error wins over skipped", []Result{r(Skipped, ReasonTooLarge), r(Error, ReasonTimeout)}, Error},
		{"skipped is not clean", []Result{r(Clean, ""), r(Skipped, ReasonEncrypted)}, Skipped},
		{"unknown is an error", []Result{r(Clean, ""), r("??", "")}, Error},
	} {
		if got, _ := Combine(tc.in); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestReadReason(t *testing.T) {
	for err, want := range map[error]Reason{
		fs.ErrNotExist:           ReasonNotFound,
		fs.ErrPermission:         ReasonAccessDenied,
		context.DeadlineExceeded: ReasonTimeout,
		errors.New("eof"):        ReasonIO,
	} {
		if got := ReadReason(fmt.Errorf("open: %w", err)); got != want {
			t.Errorf("ReadReason(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestEnginesKey(t *testing.T) {
	a := EnginesKey([]EngineVersion{{"clamav", "ClamAV 1.4.6"}, {"b", "builtin/1"}})
	b := EnginesKey([]EngineVersion{{"b", "builtin/1"}, {"clamav", "ClamAV 1.4.6"}})
	c := EnginesKey([]EngineVersion{{"clamav", "ClamAV 1.4.6"}, {"b", "builtin/2"}})
	d := EnginesKey([]EngineVersion{{"clamav", "ClamAV 1.4.6"}})
	if a != b {
		t.Error("key depends on engine order")
	}
	if a == c || a == d {
		t.Error("a version change or a missing engine kept the key")
	}
}

func TestJobJSON(t *testing.T) {
	b, err := json.Marshal(Job{ID: "x", Status: Queued})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"findings":[]`, `"engines":[]`, `"actions":[]`, `"reason":""`} {
		if !strings.Contains(s, want) {
			t.Errorf("job JSON %s lacks %s", s, want)
		}
	}
	if strings.Contains(s, `"verdict"`) || strings.Contains(s, `"finished_at"`) {
		t.Errorf("a queued job shows a verdict or finish time: %s", s)
	}
}
