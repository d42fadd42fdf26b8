package operator

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
)

// fuzzPaths are the files the agent sent, in order; FuzzReadResults sends
// the first few of them.
var fuzzPaths = []string{"/scan/a/clean", "/scan/a/bad", "/scan/b/big", "/scan/b/odd", "/scan/b/down"}

// FuzzReadResults runs readResults on any output of `lazaret scan --json`
// for the first sent%6 of fuzzPaths, into a report listing at most
// listed%8 items. The output comes from another process, which may be
// broken or not lazaret at all, so:
//
//   - nothing panics;
//   - no more results are counted than files were sent, and all of them
//     when there is no error;
//   - a file counts as clean only when its line says "clean", as
//     infected only when it says "infected", and as failed otherwise;
//   - the lists stay within their bounds (maxListed, maxListedBytes),
//     and name only files that were sent, infected ones with a
//     signature, failed ones with the verdict error or skipped.
func FuzzReadResults(f *testing.F) {
	for _, s := range []string{
		`{"name":"clean","verdict":"clean"}` + "\n" +
			`{"name":"bad","verdict":"infected","findings":[{"engine":"clamav","signature":"Eicar-Test-Signature"}]}` + "\n" +
			`{"name":"big","verdict":"skipped","reason":"too_large"}` + "\n" +
			`{"name":"odd","verdict":""}` + "\n" +
			`{"name":"down","verdict":"error","reason":"engine_error","error":"clamd: dial: connection refused"}` + "\n",
		`{"source":{"path":"/scan/a/clean"},"verdict":"clean"}` + "\r\n\n  \n",
		`{"name":"clean","verdict":"CLEAN"}`,
		`{"name":"clean","Verdict":"clean","verdict":"infected"}`,
		`{"name":"clean","verdict":"infected","findings":[]}`,
		`{"name":"clean","verdict":"infected","findings":[{"signature":""}]}`,
		`{"name":"clean","verdict":"error","error":"` + strings.Repeat("é", 300) + `"}`,
		`{"name":"clean","verdict":"clean"}{"name":"bad"}`,
		`{"name":"other","verdict":"clean"}`,
		`{"name":"clean","verdict":"clean"}` + "\n" + `{"name":"clean","verdict":"clean"}`,
		`{"name":"clean","verdict":7}`, `[]`, `null`, `{not json`, "", "\n",
		`{"name":"clean","verdict":"infected","findings":[{"signature":"` + strings.Repeat("\u0001", 200) + `"}]}`,
	} {
		f.Add([]byte(s), uint8(1), uint8(5))
	}
	f.Add([]byte(`{"name":"clean","verdict":"infected","findings":[{"signature":"S"}]}`+"\n"+
		`{"name":"bad","verdict":"infected","findings":[{"signature":"S"}]}`+"\n"), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, out []byte, sent, listed uint8) {
		paths := fuzzPaths[:int(sent)%(len(fuzzPaths)+1)]
		rep := newReport(int(listed) % 8)
		err := readResults(bytes.NewReader(out), expect(paths...), rep)

		if rep.scanned > int64(len(paths)) || (err == nil && rep.scanned != int64(len(paths))) {
			t.Fatalf("%q: counted %d results for %d files (error %v)", out, rep.scanned, len(paths), err)
		}
		// The model: the first rep.scanned lines that are not blank.
		var clean, infected int64
		n := int64(0)
		for l := range bytes.Lines(out) {
			if n == rep.scanned {
				break
			}
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			n++
			var job scan.Job
			if err := json.Unmarshal(l, &job); err != nil {
				t.Fatalf("%q: line %q was counted, but does not decode: %v", out, l, err)
			}
			switch job.Verdict {
			case scan.Clean:
				clean++
			case scan.Infected:
				infected++
			}
		}
		if n != rep.scanned || rep.infected != infected || rep.scanned-rep.infected-rep.failed != clean {
			t.Fatalf("%q: got %d scanned, %d infected, %d failed; want %d, %d infected, %d clean",
				out, rep.scanned, rep.infected, rep.failed, n, infected, clean)
		}

		if len(rep.results) > rep.maxListed || len(rep.errors) > rep.maxListed || rep.listedBytes > maxListedBytes {
			t.Fatalf("listed %d results and %d errors in %d bytes, want at most %d each and %d bytes",
				len(rep.results), len(rep.errors), rep.listedBytes, rep.maxListed, maxListedBytes)
		}
		for _, r := range rep.results {
			if !slices.Contains(paths, r.FilePath) || r.MatchingSignature == "" {
				t.Fatalf("listed result %+v: want a file sent and a signature", r)
			}
		}
		for _, e := range rep.errors {
			if !slices.Contains(paths, e.FilePath) || (e.Verdict != string(scan.Error) && e.Verdict != string(scan.Skipped)) {
				t.Fatalf("listed error %+v: want a file sent, error or skipped", e)
			}
		}
	})
}
