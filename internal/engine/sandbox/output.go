package sandbox

import (
	"bytes"
	"io"
	"strings"
	"unicode"
)

const (
	// headSize is how much of the start of an output is kept: its first
	// line names an infected sample's finding.
	headSize = 4 << 10
	// tailSize is how much of the end of an output error details quote.
	tailSize = 512
	// maxFindings caps the findings of one sample.
	maxFindings = 100
	// maxSignature caps one signature's length, as S3 tags do.
	maxSignature = 256
)

// capture keeps the start and the end of an output stream, so memory
// stays bounded however much an analyzer prints. It is written by one
// goroutine and read after that one is done.
type capture struct {
	head  []byte
	end   []byte // the last bytes, len <= 2*tailSize
	total int64
}

// readFrom reads r to its end (or its first error).
func (c *capture) readFrom(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		c.write(buf[:n])
		if err != nil {
			return
		}
	}
}

func (c *capture) write(p []byte) {
	c.total += int64(len(p))
	if room := headSize - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	if len(p) >= tailSize {
		c.end = append(c.end[:0], p[len(p)-tailSize:]...)
		return
	}
	if len(c.end)+len(p) > 2*tailSize {
		c.end = c.end[:copy(c.end, c.end[len(c.end)-tailSize:])]
	}
	c.end = append(c.end, p...)
}

// tail returns the last bytes, trimmed, for error details.
func (c *capture) tail() string {
	t := c.end
	if len(t) > tailSize {
		t = t[len(t)-tailSize:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(t), "?"))
}

// firstLine returns the first line that is not blank.
func (c *capture) firstLine() string {
	for _, l := range bytes.Split(c.head, []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" {
			return s
		}
	}
	return ""
}

// signatureName makes analyzer output fit to name a finding: valid UTF-8,
// no control characters, trimmed, at most maxSignature bytes.
func signatureName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if len(s) > maxSignature {
		s = strings.ToValidUTF8(s[:maxSignature], "")
	}
	return s
}
