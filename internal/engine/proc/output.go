package proc

import (
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
)

const (
	// TailSize is how much of the end of an output Tail keeps for error
	// details.
	TailSize = 512
	// MaxSignature caps the length of a signature name, as S3 tags do.
	MaxSignature = 256
	// MaxFindings caps the distinct signatures kept from one scan; a
	// program listing more has made its point.
	MaxFindings = 100
)

// Copy reads r to its end or its first error (such as the read deadline
// Drain sets), writing every read to w. w's result is ignored: the writers
// an engine uses never fail, and reading goes on whatever they do, so a
// program is never blocked on its output.
func Copy(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		w.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// Drain waits for done, closed once the readers of pipes (Copy) are
// finished, and reports whether they reached the pipes' ends in time. A
// program's own process group is gone by the time Drain is called, but a
// process that left it (setsid) can still hold a pipe open: after timeout
// Drain makes the reads fail at once, waits for done and returns false.
func Drain(done <-chan struct{}, timeout time.Duration, pipes ...*os.File) bool {
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		for _, p := range pipes {
			p.SetReadDeadline(time.Now())
		}
		<-done
		return false
	}
}

// Head keeps the first Max bytes written to it and discards the rest. The
// zero value keeps nothing. It is not safe for concurrent use.
type Head struct {
	// Max is how many bytes are kept.
	Max int
	b   []byte
}

// Write keeps what of p fits; it never fails.
func (h *Head) Write(p []byte) (int, error) {
	if room := h.Max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns the bytes kept, which the next Write may append to.
func (h *Head) Bytes() []byte { return h.b }

// Tail keeps the last TailSize bytes written to it, in at most
// 2*TailSize bytes of memory however much is written. The zero value is
// empty and ready to use. It is not safe for concurrent use.
type Tail struct {
	end []byte // the last bytes, len <= 2*TailSize
}

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	if len(p) >= TailSize {
		t.end = append(t.end[:0], p[len(p)-TailSize:]...)
		return len(p), nil
	}
	if len(t.end)+len(p) > 2*TailSize {
		t.end = t.end[:copy(t.end, t.end[len(t.end)-TailSize:])]
	}
	t.end = append(t.end, p...)
	return len(p), nil
}

// String returns the last TailSize bytes, trimmed, with invalid UTF-8 as
// '?', for error details.
func (t *Tail) String() string {
	b := t.end
	if len(b) > TailSize {
		b = b[len(b)-TailSize:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

// SignatureName makes a program's output fit to name a finding: valid
// UTF-8, no control characters, trimmed, at most MaxSignature bytes.
func SignatureName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if len(s) > MaxSignature {
		// Trimmed again: the cut may leave a space at the end.
		s = strings.TrimSpace(strings.ToValidUTF8(s[:MaxSignature], ""))
	}
	return s
}

// AppendSignature appends s, made a signature name by SignatureName, to
// sigs, unless it is empty, already there, or sigs holds MaxFindings.
func AppendSignature(sigs []string, s string) []string {
	if len(sigs) >= MaxFindings {
		return sigs
	}
	if s = SignatureName(s); s == "" || slices.Contains(sigs, s) {
		return sigs
	}
	return append(sigs, s)
}
