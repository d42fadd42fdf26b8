package command

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/engine/proc"
)

// TestOutputWriteBoundaries feeds the same output in writes of every size
// from one byte up: a line split across writes, or across the max_output
// buffer, must be examined whole.
func TestOutputWriteBoundaries(t *testing.T) {
	re := regexp.MustCompile(`(?m)^.*: (?P<signature>\S+) FOUND$`)
	text := strings.Repeat("/tmp/a: OK\n", 300) + "/tmp/b: Sig.One FOUND\n" +
		strings.Repeat("x", 5000) + "\n" + "/tmp/c: Sig.Two FOUND"
	for _, step := range []int{1, 2, 7, 64, 1000, 1024, 4096, len(text)} {
		o := newOutput(re, re.SubexpIndex("signature"), 1024)
		for p := text; len(p) > 0; {
			n := min(step, len(p))
			o.Write([]byte(p[:n]))
			p = p[n:]
		}
		o.flush()
		if want := []string{"Sig.One", "Sig.Two"}; !slices.Equal(o.sigs, want) || !o.matched {
			t.Errorf("step %d: got %q (matched %v), want %q", step, o.sigs, o.matched, want)
		}
		if !o.cut {
			t.Errorf("step %d: the 5000-byte line was not reported cut", step)
		}
		if o.total != int64(len(text)) {
			t.Errorf("step %d: got total %d, want %d", step, o.total, len(text))
		}
		if got := o.end.String(); !strings.HasSuffix(got, "Sig.Two FOUND") || len(got) > proc.TailSize {
			t.Errorf("step %d: got tail %q", step, got)
		}
	}
}

// TestOutputLineOfMax: a line exactly as long as the buffer is examined
// whole, so it is not cut, with or without its newline and however the
// writes fall; one byte more is a cut.
func TestOutputLineOfMax(t *testing.T) {
	re := regexp.MustCompile(`FOUND`)
	for _, tt := range []struct {
		name, text string
		cut        bool
	}{
		{"line of max, newline", strings.Repeat("x", 1024) + "\nok\n", false},
		{"line of max, end", strings.Repeat("x", 1024), false},
		{"line of max+1", strings.Repeat("x", 1025) + "\n", true},
	} {
		for _, step := range []int{1, 1024, 1025, len(tt.text)} {
			o := newOutput(re, -1, 1024)
			for p := tt.text; len(p) > 0; {
				n := min(step, len(p))
				o.Write([]byte(p[:n]))
				p = p[n:]
			}
			o.flush()
			if o.cut != tt.cut {
				t.Errorf("%s, writes of %d: cut %v, want %v", tt.name, step, o.cut, tt.cut)
			}
		}
	}
}
