package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestCopy(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("0123456789", 10<<10) // over Copy's buffer
	for _, tc := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"to the end", strings.NewReader(text), text},
		{"one byte a read", iotest.OneByteReader(strings.NewReader("abc")), "abc"},
		{"data with the end", iotest.DataErrReader(strings.NewReader("abc")), "abc"},
		{"to the first error", io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errors.New("boom")), strings.NewReader("def")), "abc"},
		{"empty", strings.NewReader(""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			Copy(&b, tc.r)
			if got := b.String(); got != tc.want {
				t.Errorf("got %d bytes %.20q, want %d bytes %.20q", len(got), got, len(tc.want), tc.want)
			}
		})
	}
	t.Run("failing writer", func(t *testing.T) {
		t.Parallel()
		// Reading goes on, so a program is never blocked on its output.
		r := strings.NewReader(text)
		Copy(failingWriter{}, iotest.HalfReader(r))
		if r.Len() != 0 {
			t.Errorf("got %d bytes left unread, want 0", r.Len())
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("full") }

func TestDrain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		holdOpen bool // a process outside the group keeps the pipe open
		want     bool
	}{
		{"pipe ended", false, true},
		{"pipe held open", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			var b bytes.Buffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				Copy(&b, r)
			}()
			w.Write([]byte("output"))
			if !tc.holdOpen {
				w.Close()
			}
			start := time.Now()
			if got := Drain(done, 50*time.Millisecond, r); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if !tc.holdOpen && time.Since(start) > 5*time.Second {
				t.Errorf("took %s to drain an ended pipe", time.Since(start))
			}
			if got := b.String(); got != "output" {
				t.Errorf("got output %q, want %q", got, "output")
			}
		})
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"zero value keeps nothing", 0, []string{"abc"}, ""},
		{"all fits", 10, []string{"abc", "def"}, "abcdef"},
		{"cut in a write", 5, []string{"abc", "defg", "hij"}, "abcde"},
		{"exactly full", 3, []string{"abc", "d"}, "abc"},
		{"no writes", 3, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &Head{Max: tc.max}
			for _, w := range tc.writes {
				if n, err := h.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q): got %d, %v, want %d, nil", w, n, err, len(w))
				}
			}
			if got := string(h.Bytes()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTail writes the same output in writes of every size: what is kept
// must not depend on how the output arrived, and memory stays bounded.
func TestTail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 3*TailSize) + strings.Repeat("z", TailSize-5) + "end\n\n"
	for _, tc := range []struct {
		name string
		text string
		want string
	}{
		{"short", "  hello\n", "hello"},
		{"empty", "", ""},
		{"longer than TailSize", long, strings.Repeat("z", TailSize-5) + "end"},
		{"invalid UTF-8", "bad \xff byte\n", "bad ? byte"},
	} {
		for _, step := range []int{1, 3, 100, TailSize - 1, TailSize, TailSize + 1, 4096} {
			t.Run(fmt.Sprintf("%s/step %d", tc.name, step), func(t *testing.T) {
				t.Parallel()
				var tl Tail
				for p := tc.text; len(p) > 0; {
					n := min(step, len(p))
					if k, err := tl.Write([]byte(p[:n])); k != n || err != nil {
						t.Fatalf("Write: got %d, %v, want %d, nil", k, err, n)
					}
					if len(tl.end) > 2*TailSize {
						t.Fatalf("kept %d bytes, want at most %d", len(tl.end), 2*TailSize)
					}
					p = p[n:]
				}
				if got := tl.String(); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestSignatureName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "Eicar-Test-Signature", "Eicar-Test-Signature"},
		{"spaces", "  spaced\t", "spaced"},
		{"control and invalid UTF-8", "bell\x07\xffx", "bellx"},
		{"too long", strings.Repeat("s", 300), strings.Repeat("s", MaxSignature)},
		{"cut inside a rune", strings.Repeat("s", MaxSignature-1) + "é", strings.Repeat("s", MaxSignature-1)},
		{"only control", "\x00\x1b", ""},
		// Found by FuzzSignatureName: the cut ended on a space.
		{"cut before a space", strings.Repeat("s", MaxSignature-1) + " x", strings.Repeat("s", MaxSignature-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := SignatureName(tc.in); got != tc.want {
				t.Errorf("SignatureName(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendSignature(t *testing.T) {
	t.Parallel()
	full := make([]string, MaxFindings)
	for i := range full {
		full[i] = fmt.Sprintf("Sig.%d", i)
	}
	for _, tc := range []struct {
		name string
		sigs []string
		in   string
		want []string
	}{
		{"first", nil, " Sig.One ", []string{"Sig.One"}},
		{"another", []string{"Sig.One"}, "Sig.Two", []string{"Sig.One", "Sig.Two"}},
		{"already there", []string{"Sig.One"}, "Sig.One\x07", []string{"Sig.One"}},
		{"empty", []string{"Sig.One"}, " \x00 ", []string{"Sig.One"}},
		{"full", full, "Sig.New", full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := AppendSignature(slices.Clone(tc.sigs), tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("AppendSignature(%q): got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
