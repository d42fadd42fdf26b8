package proc

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzSignatureName checks SignatureName on any program output s. The
// name becomes a finding, a job's JSON and an S3 tag, so whatever a
// sample makes a scanner print:
//
//   - the name is valid UTF-8, holds no control character, has no space
//     at either end and is at most MaxSignature bytes;
//   - it is already a name: SignatureName of it is itself;
//   - an s that is already such a name is kept as it is.
func FuzzSignatureName(f *testing.F) {
	for _, s := range []string{
		"Eicar-Test-Signature", "  Win.Test.EICAR_HDB-1 \n", "", " ", "\x00", "a\x00b", "\xff\xfe", "a\xffb",
		"Sig\u0085", "\u00a0Sig\u3000", "\x1b[31mRed\x1b[0m", "é", strings.Repeat("a", MaxSignature+10),
		strings.Repeat("é", MaxSignature), strings.Repeat("a", MaxSignature-1) + " b",
		strings.Repeat("a", MaxSignature-1) + "\u00a0b", "\u200bzero\u200b", "\ufeffBOM",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SignatureName(s)
		checkName(t, s, got)
		if again := SignatureName(got); again != got {
			t.Fatalf("SignatureName(%q) = %q, but SignatureName(%q) = %q: want a name to stay as it is", s, got, got, again)
		}
		if isName(s) && got != s {
			t.Fatalf("SignatureName(%q) = %q, want the name kept as it is", s, got)
		}
	})
}

// FuzzAppendSignature checks AppendSignature on the lines of any output,
// followed by n numbered copies of its last line (enough to reach
// MaxFindings from a short input):
//
//   - the list never holds more than MaxFindings names;
//   - every name in it is a SignatureName, not empty, and there once;
//   - it is the distinct non-empty names of the lines in order of first
//     appearance, cut at MaxFindings.
func FuzzAppendSignature(f *testing.F) {
	f.Add("/tmp/a: Eicar FOUND\n/tmp/b: Eicar FOUND\nOther", uint8(0))
	f.Add("", uint8(0))
	f.Add("\n\n \x00\n", uint8(3))
	f.Add("Sig", uint8(MaxFindings+5))
	f.Add("A\nB\nC\nA\n a \na", uint8(200))
	f.Add("x\xff\ny\n"+strings.Repeat("z", MaxSignature+1), uint8(2))
	f.Fuzz(func(t *testing.T, out string, n uint8) {
		names := strings.Split(out, "\n")
		last := names[len(names)-1]
		for i := range int(n) {
			names = append(names, last+strconv.Itoa(i))
		}
		var sigs, want []string
		for _, s := range names {
			sigs = AppendSignature(sigs, s)
			if c := SignatureName(s); c != "" && !slices.Contains(want, c) && len(want) < MaxFindings {
				want = append(want, c)
			}
		}
		if len(sigs) > MaxFindings {
			t.Fatalf("got %d names, want at most %d", len(sigs), MaxFindings)
		}
		for i, s := range sigs {
			if s == "" || slices.Index(sigs, s) != i {
				t.Fatalf("name %d: got %q, want each name not empty and there once (%q)", i, s, sigs)
			}
			checkName(t, s, s)
		}
		if !slices.Equal(sigs, want) {
			t.Fatalf("got %q, want %q", sigs, want)
		}
	})
}

// FuzzHeadTail writes any output, in writes of step+1 bytes, to a Head
// of limit bytes and to a Tail:
//
//   - Head keeps exactly the first limit bytes;
//   - Tail's String is the last TailSize bytes, trimmed, with invalid
//     UTF-8 as '?', however the output was split;
//   - Tail never holds more than 2*TailSize bytes.
func FuzzHeadTail(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint16(4), uint8(0))
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add(bytes.Repeat([]byte("0123456789"), 200), uint16(TailSize), uint8(255))
	f.Add(bytes.Repeat([]byte("é"), TailSize+1), uint16(1), uint8(254))
	f.Add(append(bytes.Repeat([]byte("x"), 2*TailSize), " \xff end \n"...), uint16(3*TailSize), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, step uint8) {
		h := Head{Max: int(limit)}
		var tl Tail
		for p := data; len(p) > 0; {
			k := min(int(step)+1, len(p))
			if n, err := h.Write(p[:k]); n != k || err != nil {
				t.Fatalf("Head.Write: got %d, %v; want %d, nil", n, err, k)
			}
			if n, err := tl.Write(p[:k]); n != k || err != nil {
				t.Fatalf("Tail.Write: got %d, %v; want %d, nil", n, err, k)
			}
			if len(tl.end) > 2*TailSize {
				t.Fatalf("Tail holds %d bytes, want at most %d", len(tl.end), 2*TailSize)
			}
			p = p[k:]
		}
		if got, want := h.Bytes(), data[:min(len(data), int(limit))]; !bytes.Equal(got, want) {
			t.Fatalf("Head{Max: %d}: got %q, want %q", limit, got, want)
		}
		end := data[max(0, len(data)-TailSize):]
		if got, want := tl.String(), strings.TrimSpace(strings.ToValidUTF8(string(end), "?")); got != want {
			t.Fatalf("Tail in writes of %d: got %q, want %q", int(step)+1, got, want)
		}
	})
}

// checkName fails t unless name is fit to name a finding (from output s).
func checkName(t *testing.T, s, name string) {
	t.Helper()
	if !isName(name) {
		t.Fatalf("SignatureName(%q) = %q: want valid UTF-8, no control characters, no space at the ends, at most %d bytes", s, name, MaxSignature)
	}
}

// isName reports whether s is valid UTF-8 with no control characters, no
// space at either end, and at most MaxSignature bytes.
func isName(s string) bool {
	return utf8.ValidString(s) && len(s) <= MaxSignature && strings.TrimSpace(s) == s &&
		!strings.ContainsFunc(s, unicode.IsControl)
}
