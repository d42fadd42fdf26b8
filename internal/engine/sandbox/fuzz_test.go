package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/lazaret/lazaret/internal/engine/proc"
)

// fuzzField is the signature field of the engine FuzzFindings runs.
const fuzzField = "signature"

// FuzzFindings runs what an analyzer leaves behind, a report file and
// its standard output (written in pieces of step+1 bytes), through the
// path an infected sample's findings take: keepReport, then findings.
// Both are the sample's to shape, so for any of them:
//
//   - nothing panics;
//   - an empty report is an error (one is required), any other within
//     the limits is read, and its JSON object (if it is one) returned
//     only when infected is set;
//   - there is at least one finding, so an infected sample never reads
//     as one without a name, and at most proc.MaxFindings;
//   - every name is valid UTF-8, without control characters or spaces
//     at the ends, at most proc.MaxSignature bytes, and there once;
//   - the names are the report field's strings when it holds any that
//     is not blank (a string, or a list of them), else the first line
//     that is not blank in the first headSize bytes of standard output,
//     else "unknown".
func FuzzFindings(f *testing.F) {
	for _, s := range []struct{ report, stdout string }{
		{`{"signature": "Eicar-Test-Signature"}`, ""},
		{`{"signature": [" ", ""]}`, "Named.On.Stdout\n"},
		{`{"signature": ["A", "B", "A", " ", 7, null, "C\u0000"]}`, "ignored\n"},
		{`{"signature": 12}`, "\n\n  From.Stdout \r\nnext\n"},
		{`{"signature": []}`, ""},
		{`{"signature": ""}`, "x"},
		{`{"signature": "a", "signature": "b"}`, ""},
		{`{"Signature": "case"}`, "fallback"},
		{`[{"signature": "not an object"}]`, "list\n"},
		{`not json`, "Sig \xff\x00 name"},
		{"", "no report"},
		{`{"signature": "` + strings.Repeat("é", 200) + `"}`, ""},
		{`{"signature": ["` + strings.Repeat(`x", "`, proc.MaxFindings+3) + `y"]}`, ""},
		{"\xef\xbb\xbf" + `{"signature": "bom"}`, ""},
		{`{"signature": "\ud800"}`, ""},
		{`{}`, strings.Repeat(" ", headSize) + "\nbeyond the head"},
	} {
		f.Add([]byte(s.report), []byte(s.stdout), true, uint8(0))
	}
	f.Add([]byte(`{"signature": "clean run"}`), []byte("out"), false, uint8(3))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, report, stdout []byte, infected bool, step uint8) {
		e := &Engine{cfg: Config{
			Limits: Limits{FileSize: 4 << 20},
			Report: ReportConfig{MaxSize: 4 << 20, SignatureField: fuzzField},
		}}
		p := filepath.Join(dir, "report")
		if err := os.WriteFile(p, report, 0o600); err != nil {
			t.Fatal(err)
		}
		ref, doc, err := e.keepReport(context.Background(), p, infected)
		switch {
		case len(report) == 0 && err == nil:
			t.Fatalf("keepReport of an empty report: got no error, want one (a report is required)")
		case len(report) > 0 && err != nil:
			t.Fatalf("keepReport(%q): %v", report, err)
		case ref != nil:
			t.Fatalf("keepReport with no store: got %+v, want no reference", ref)
		case doc != nil && (!infected || err != nil):
			t.Fatalf("keepReport(%q, infected %v) = %v, %v: want no JSON unless infected", report, infected, doc, err)
		}

		c := newCapture()
		for b := stdout; len(b) > 0; {
			k := min(int(step)+1, len(b))
			c.Write(b[:k])
			b = b[k:]
		}
		got := e.findings(doc, c)
		if len(got) == 0 || len(got) > proc.MaxFindings {
			t.Fatalf("got %d findings, want 1 to %d", len(got), proc.MaxFindings)
		}
		var names []string
		for i, fd := range got {
			s := fd.Signature
			if s == "" || !utf8.ValidString(s) || len(s) > proc.MaxSignature || strings.TrimSpace(s) != s ||
				strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("finding %d: got %q, want a name fit for a tag", i, s)
			}
			if slices.Contains(names, s) {
				t.Fatalf("finding %d: %q twice", i, s)
			}
			names = append(names, s)
		}
		if want := wantFindings(report, stdout, infected && err == nil); !slices.Equal(names, want) {
			t.Fatalf("report %q, stdout %q: got %q, want %q", report, stdout, names, want)
		}
	})
}

// wantFindings is FuzzFindings' model of the names: the signature field
// of a JSON object report (when it was read), else the first line.
func wantFindings(report, stdout []byte, read bool) []string {
	var raw []string
	var doc map[string]any
	if read && json.Unmarshal(report, &doc) == nil {
		switch v := doc[fuzzField].(type) {
		case string:
			raw = []string{v}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					raw = append(raw, s)
				}
			}
		}
	}
	names := func(raw []string) (want []string) {
		for _, s := range raw {
			if n := proc.SignatureName(s); n != "" && !slices.Contains(want, n) && len(want) < proc.MaxFindings {
				want = append(want, n)
			}
		}
		return want
	}
	want := names(raw)
	if len(want) == 0 {
		head := stdout[:min(len(stdout), headSize)]
		for l := range bytes.Lines(head) {
			if s := strings.TrimSpace(string(l)); s != "" {
				want = names([]string{s})
				break
			}
		}
	}
	if len(want) == 0 {
		return []string{"unknown"}
	}
	return want
}
