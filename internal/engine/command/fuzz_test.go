package command

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/lazaret/lazaret/internal/engine/proc"
)

// fuzzPatterns are output_matches an operator might configure, compiled
// as New compiles them. The output is what the fuzzer varies: it is the
// scanner's, and the sample shapes it; the pattern is configuration.
var fuzzPatterns = []string{
	`^.*: (?P<signature>\S+) FOUND$`,          // clamscan
	`^(?P<signature>\S+) `,                    // yara
	`FOUND`,                                   // no signature group
	`FOUND(?: (?P<signature>\S+))?`,           // a group that may not take part
	`(?P<signature>\S*) FOUND`,                // a group that may be empty
	`\bEICAR\b|(?P<signature>Sig\.[\w.]+)`,    // several matches a line
	`(?P<signature>[^\n]+)$`,                  // every line a finding
	`(?i)infected: (?P<signature>.+)`,         // . takes invalid UTF-8 too
	`\b`,                                      // only empty matches
	`(?P<signature>x)|y`,                      // a match without the group
	`^(?P<signature>[^:]*):\s*(?:OK|ERROR)?$`, // names made of the path
}

// FuzzOutput feeds any output, in writes of step+1 bytes, to an output
// of limit+1 bytes examining it with fuzzPatterns[pat], and compares it
// with a model that reads the whole output at once:
//
//   - nothing panics, and every byte is counted;
//   - each line is examined once, whole if it is no longer than the
//     buffer, else its first limit+1 bytes, and then the output is
//     reported cut;
//   - a non-empty match anywhere makes it matched, and the signature
//     groups of those matches are the names, each a proc.SignatureName,
//     there once, in order, at most proc.MaxFindings of them;
//   - findings are never empty: "unknown" when no match named one;
//   - the tail is the last proc.TailSize bytes, as proc.Tail keeps it.
//
// The split into writes never changes the result.
func FuzzOutput(f *testing.F) {
	seeds := []struct {
		out string
		pat uint8
	}{
		{"/tmp/a: OK\n/tmp/b: Eicar-Test-Signature FOUND\n", 0},
		{"/tmp/b: Eicar-Test-Signature FOUND", 0},
		{"/tmp/b: Sig.One FOUND\r\n/tmp/c: Sig.One FOUND\n/tmp/d: Sig.Two FOUND\n", 0},
		{"rule_a /tmp/x\nrule_b /tmp/x\nrule_a /tmp/y\n", 1},
		{"nothing here\n", 2},
		{"FOUND\nFOUND Sig\n", 3},
		{" FOUND\n", 4},
		{"EICAR EICAR Sig.A Sig.B Sig.A\n", 5},
		{strings.Repeat("line\n", 3) + strings.Repeat("x", 400) + "\n", 6},
		{"INFECTED: \xff\xfeBad\x00Name  \n", 7},
		{"word boundary\n", 8},
		{"yyy\nxyx\n", 9},
		{"/a b: OK\n/c:\n", 10},
		{"", 0},
		{"\n\n\n", 6},
		{strings.Repeat("a: S FOUND\n", 50), 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.out), s.pat, uint16(1023), uint8(255))
		f.Add([]byte(s.out), s.pat, uint16(7), uint8(0))
	}
	f.Add([]byte(strings.Repeat("abcdefgh\n", 200)), uint8(6), uint16(299), uint8(2))

	res := make([]*regexp.Regexp, len(fuzzPatterns))
	for i, p := range fuzzPatterns {
		res[i] = regexp.MustCompile("(?m)" + p)
		if res[i].MatchString("") {
			f.Fatalf("pattern %q matches empty output: New refuses it", p)
		}
	}
	f.Fuzz(func(t *testing.T, out []byte, pat uint8, limit uint16, step uint8) {
		re := res[int(pat)%len(res)]
		sigIndex := re.SubexpIndex("signature")
		size := int(limit)%1024 + 1
		o := newOutput(re, sigIndex, size)
		for p := out; len(p) > 0; {
			k := min(int(step)+1, len(p))
			if n, err := o.Write(p[:k]); n != k || err != nil {
				t.Fatalf("Write: got %d, %v; want %d, nil", n, err, k)
			}
			if len(o.buf) > size {
				t.Fatalf("holding %d bytes of lines, want at most %d", len(o.buf), size)
			}
			p = p[k:]
		}
		o.flush()

		matched, cut, sigs := modelOutput(re, sigIndex, size, out)
		if o.matched != matched || o.cut != cut || !slices.Equal(o.sigs, sigs) {
			t.Fatalf("%q with %q, buffer %d, writes of %d: got matched %v, cut %v, names %q; want %v, %v, %q",
				out, re, size, int(step)+1, o.matched, o.cut, o.sigs, matched, cut, sigs)
		}
		if o.total != int64(len(out)) {
			t.Fatalf("got total %d, want %d", o.total, len(out))
		}
		end := out[max(0, len(out)-proc.TailSize):]
		if got, want := o.end.String(), strings.TrimSpace(strings.ToValidUTF8(string(end), "?")); got != want {
			t.Fatalf("got tail %q, want %q", got, want)
		}
		fs := o.findings()
		if len(fs) == 0 || len(fs) > proc.MaxFindings {
			t.Fatalf("got %d findings, want 1 to %d", len(fs), proc.MaxFindings)
		}
		for i, fd := range fs {
			s := fd.Signature
			if s == "" || !utf8.ValidString(s) || len(s) > proc.MaxSignature || strings.TrimSpace(s) != s ||
				strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("finding %d: got %q, want a name fit for a tag", i, s)
			}
		}
		if len(sigs) == 0 && (len(fs) != 1 || fs[0].Signature != "unknown") {
			t.Fatalf("no names: got findings %+v, want one named unknown", fs)
		}
	})
}

// modelOutput is FuzzOutput's model: the output split into lines at
// once, each examined (cut to size when it does not fit) by the
// regexp alone.
func modelOutput(re *regexp.Regexp, sigIndex, size int, out []byte) (matched, cut bool, sigs []string) {
	lines := bytes.Split(out, []byte("\n"))
	for i, l := range lines {
		last := i == len(lines)-1
		if last && len(l) == 0 {
			break
		}
		if len(l) > size {
			l, cut = l[:size], true
		}
		for _, m := range re.FindAllSubmatchIndex(l, -1) {
			if m[0] == m[1] {
				continue
			}
			matched = true
			if sigIndex >= 0 && m[2*sigIndex] >= 0 {
				sigs = proc.AppendSignature(sigs, string(l[m[2*sigIndex]:m[2*sigIndex+1]]))
			}
		}
	}
	return matched, cut, sigs
}
