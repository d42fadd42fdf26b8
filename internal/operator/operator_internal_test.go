package operator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
	"github.com/lazaret/lazaret/internal/scan"
)

func TestDueTime(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		schedule, since, now string
		wantDue, wantNext    string // "" is the zero time
	}{
		{"0 */3 * * *", "2026-11-24T00:30:00Z", "2026-11-24T02:59:59Z", "", "2026-11-24T03:00:00Z"},
		{"0 */3 * * *", "2026-11-24T00:30:00Z", "2026-11-24T03:00:00Z", "2026-11-24T03:00:00Z", "2026-11-24T06:00:00Z"},
		// Missed runs during an outage: only the latest runs.
		{"0 */3 * * *", "2026-11-24T00:30:00Z", "2026-11-24T10:00:00Z", "2026-11-24T09:00:00Z", "2026-11-24T12:00:00Z"},
		{"@every 1s", "2026-11-24T00:00:00Z", "2026-11-24T00:00:02.5Z", "2026-11-24T00:00:02Z", "2026-11-24T00:00:03Z"},
		// A very long outage on a fast schedule is skipped in one step.
		{"@every 1s", "2026-01-01T00:00:00Z", "2026-11-24T00:00:00Z", "2026-11-24T00:00:00Z", "2026-11-24T00:00:01Z"},
		// "@every" counts from the last run, whenever the operator looks:
		// the same time (and so the same VirusScan) after a restart.
		{"@every 1h", "2026-11-24T10:00:30Z", "2026-11-24T14:20:00Z", "2026-11-24T14:00:30Z", "2026-11-24T15:00:30Z"},
		{"@every 1h", "2026-11-24T10:00:30Z", "2026-11-24T14:20:05Z", "2026-11-24T14:00:30Z", "2026-11-24T15:00:30Z"},
		{"@every 1h", "2026-11-24T10:00:30Z", "2026-11-24T11:00:29Z", "", "2026-11-24T11:00:30Z"},
		{"@every 90s", "2026-11-24T10:00:00Z", "2026-11-24T10:03:00Z", "2026-11-24T10:03:00Z", "2026-11-24T10:04:30Z"},
		{"0 0 1 1 *", "2024-06-01T00:00:00Z", "2026-11-24T00:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "2026-11-23T12:00:00Z", "2026-11-24T02:00:00Z", "2026-11-24T02:00:00Z", "2026-11-25T02:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.schedule+" "+tt.now, func(t *testing.T) {
			sched, err := cron.ParseStandard(tt.schedule)
			if err != nil {
				t.Fatal(err)
			}
			due, next := dueTime(sched, at(tt.since), at(tt.now))
			var wantDue time.Time
			if tt.wantDue != "" {
				wantDue = at(tt.wantDue)
			}
			if !due.Equal(wantDue) || !next.Equal(at(tt.wantNext)) {
				t.Errorf("got due %s next %s, want due %s next %s", due, next, wantDue, tt.wantNext)
			}
		})
	}
}

func TestNames(t *testing.T) {
	vs := &v1beta1.VirusScan{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 250), UID: types.UID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")}}
	if got := JobName(vs); len(got) > 63 || got != strings.Repeat("a", 44)+"-scan-0f1e2d3c" {
		t.Errorf("JobName: got %q (%d), want at most 63 characters", got, len(got))
	}
	if got := ScanName("nightly", time.Unix(1764000000, 0)); got != "nightly-1764000000" {
		t.Errorf("ScanName: got %q", got)
	}
	if got := ScanName(strings.Repeat("b", 253), time.Unix(1764000000, 0)); len(got) != 253 || !strings.HasSuffix(got, "-1764000000") {
		t.Errorf("ScanName of a long name: got %d characters", len(got))
	}
}

// A scan Job is bounded by default; a negative ActiveDeadline (what
// --active-deadline 0 becomes) is no bound.
func TestJobActiveDeadline(t *testing.T) {
	for _, tt := range []struct {
		name     string
		deadline time.Duration
		want     *int64 // activeDeadlineSeconds
	}{
		{"default", 0, ptr.To[int64](24 * 60 * 60)},
		{"no bound", -1, nil},
		{"whole seconds", 90 * time.Minute, ptr.To[int64](5400)},
		{"rounded up", 1500 * time.Millisecond, ptr.To[int64](2)},
		{"under a second", time.Millisecond, ptr.To[int64](1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{ActiveDeadline: tt.deadline}
			opts.setDefaults()
			vs := &v1beta1.VirusScan{ObjectMeta: metav1.ObjectMeta{Name: "vs", Namespace: "ns", UID: "0f1e2d3c"}}
			got := buildJob(vs, &opts).Spec.ActiveDeadlineSeconds
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("activeDeadlineSeconds: got %v, want %v", ptrString(got), ptrString(tt.want))
			}
		})
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "none"
	}
	return strconv.FormatInt(*p, 10)
}

// results are the JSON lines `lazaret scan --json` prints.
func results(t *testing.T, jobs ...scan.Job) string {
	t.Helper()
	var b strings.Builder
	for _, j := range jobs {
		raw, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

func expect(paths ...string) <-chan string {
	ch := make(chan string, len(paths))
	for _, p := range paths {
		ch <- p
	}
	close(ch)
	return ch
}

// Every result is attributed to its file, and anything but clean or
// infected is a failure, never clean.
func TestReadResults(t *testing.T) {
	file := func(p string, v scan.Verdict, sig string) scan.Job {
		j := scan.Job{Name: p[strings.LastIndexByte(p, '/')+1:], Verdict: v, Reason: scan.ReasonNone}
		if sig != "" {
			j.Findings = []scan.Finding{{Engine: "clamav", Signature: sig}}
		}
		return j
	}
	rep := newReport(10)
	out := results(t,
		file("/scan/a/clean", scan.Clean, ""),
		file("/scan/a/bad", scan.Infected, "Eicar-Test-Signature"),
		scan.Job{Name: "big", Verdict: scan.Skipped, Reason: scan.ReasonTooLarge},
		scan.Job{Name: "odd", Verdict: ""},
		scan.Job{Name: "down", Verdict: scan.Error, Reason: scan.ReasonEngineError, Error: "clamd: dial: connection refused"},
	)
	if err := readResults(strings.NewReader(out), expect("/scan/a/clean", "/scan/a/bad", "/scan/b/big", "/scan/b/odd", "/scan/b/down"), rep); err != nil {
		t.Fatal(err)
	}
	if rep.scanned != 5 || rep.infected != 1 || rep.failed != 3 {
		t.Errorf("counts: got %d scanned, %d infected, %d failed, want 5, 1, 3", rep.scanned, rep.infected, rep.failed)
	}
	if len(rep.results) != 1 || rep.results[0] != (v1beta1.VirusScanResultItem{FilePath: "/scan/a/bad", MatchingSignature: "Eicar-Test-Signature"}) {
		t.Errorf("results: got %+v", rep.results)
	}
	wantErr := []string{"/scan/b/big skipped too_large", "/scan/b/odd error engine_error", "/scan/b/down error engine_error"}
	for i, e := range rep.errors {
		if got := e.FilePath + " " + e.Verdict + " " + e.Reason; i >= len(wantErr) || got != wantErr[i] {
			t.Errorf("error %d: got %q, want %q", i, got, wantErr[min(i, len(wantErr)-1)])
		}
	}

	for _, tt := range []struct {
		name, out string
		expect    []string
		want      string
	}{
		{"result for another file", results(t, file("/x/other", scan.Clean, "")), []string{"/x/mine"}, "does not match"},
		{"fewer results than files", results(t, file("/x/a", scan.Clean, "")), []string{"/x/a", "/x/b"}, "scan ended before /x/b was scanned"},
		{"more results than files", results(t, file("/x/a", scan.Clean, ""), file("/x/a", scan.Clean, "")), []string{"/x/a"}, "more results"},
		{"garbage", "{not json\n", []string{"/x/a"}, "read scan output"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := readResults(strings.NewReader(tt.out), expect(tt.expect...), newReport(10))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReportTruncates(t *testing.T) {
	rep := newReport(2)
	for _, p := range []string{"/a", "/b", "/c"} {
		rep.add(p, &scan.Job{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: "S"}}})
	}
	if rep.infected != 3 || len(rep.results) != 2 || !rep.truncated {
		t.Errorf("got %d infected, %d listed, truncated %v; want 3, 2, true", rep.infected, len(rep.results), rep.truncated)
	}
}

func TestListSafe(t *testing.T) {
	for p, want := range map[string]bool{"/scan/a b": true, "/scan/a\nb": false, "/scan/a\r": false, "-": false, " ": false, "": false} {
		if got := listSafe(p); got != want {
			t.Errorf("listSafe(%q): got %v, want %v", p, got, want)
		}
	}
}

// A result line longer than maxResultLine fails the run rather than
// filling the agent's memory.
func TestReadResultsLineLimit(t *testing.T) {
	long := `{"name":"a","verdict":"clean","error":"` + strings.Repeat("x", maxResultLine) + `"}` + "\n"
	err := readResults(strings.NewReader(long), expect("/x/a"), newReport(10))
	if err == nil || !strings.Contains(err.Error(), "read scan output") {
		t.Errorf("got %v, want a read scan output error", err)
	}
}

// The byte bound counts the items as the status stores them, escapes
// included: a path of control characters is six bytes a character there.
func TestReportBoundsJSONSize(t *testing.T) {
	rep := newReport(1 << 20)
	path := "/scan/" + strings.Repeat("\x01", 4000)
	for range 1000 {
		rep.add(path, &scan.Job{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: "S"}}})
	}
	raw, err := json.Marshal(rep.results)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > maxListedBytes+len(rep.results)+2 || !rep.truncated || rep.infected != 1000 {
		t.Errorf("got %d bytes of JSON listed, truncated %v, %d infected; want at most %d, true, 1000", len(raw), rep.truncated, rep.infected, maxListedBytes)
	}
}

// A scanner whose exit code says something went wrong while every result
// read was clean (here: none, it could not start) fails the run, never
// reads as a clean scan.
func TestScanTargetsExitCode(t *testing.T) {
	empty := []agentTarget{{root: t.TempDir()}}
	for _, tt := range []struct {
		code    int
		wantErr bool
	}{{0, false}, {1, true}, {2, true}} {
		scanFn := func(_ context.Context, _ []string, stdin io.Reader, _ io.Writer) int {
			io.Copy(io.Discard, stdin)
			return tt.code
		}
		rep := newReport(10)
		err := scanTargets(context.Background(), empty, AgentOptions{Scan: scanFn, Logger: slog.New(slog.DiscardHandler)}, rep)
		if (err != nil) != tt.wantErr {
			t.Errorf("scan exit %d on an empty target: got %v, want error %v", tt.code, err, tt.wantErr)
		}
	}
}
