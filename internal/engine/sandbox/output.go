package sandbox

import (
	"bytes"
	"strings"

	"github.com/lazaret/lazaret/internal/engine/proc"
)

// headSize is how much of the start of an output is kept: its first line
// names an infected sample's finding.
const headSize = 4 << 10

// capture keeps the start and the end of an output stream, so memory
// stays bounded however much an analyzer prints. It is written by one
// goroutine and read after that one is done.
type capture struct {
	head proc.Head
	end  proc.Tail
}

func newCapture() *capture {
	return &capture{head: proc.Head{Max: headSize}}
}

// Write keeps the start and the end of p; it never fails.
func (c *capture) Write(p []byte) (int, error) {
	c.head.Write(p)
	c.end.Write(p)
	return len(p), nil
}

// firstLine returns the first line that is not blank.
func (c *capture) firstLine() string {
	for _, l := range bytes.Split(c.head.Bytes(), []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" {
			return s
		}
	}
	return ""
}
