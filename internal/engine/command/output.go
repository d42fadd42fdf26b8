package command

import (
	"bytes"
	"regexp"

	"github.com/lazaret/lazaret/internal/engine/proc"
	"github.com/lazaret/lazaret/internal/scan"
)

// output examines a command's output as it streams: it runs the regexp
// over complete lines, holding at most max bytes, and keeps the last bytes
// for error details. Memory stays bounded however much the command
// prints. It is written by one goroutine and read after that one is done.
type output struct {
	re       *regexp.Regexp
	sigIndex int
	max      int

	buf      []byte    // incomplete lines not yet examined, len <= max
	skipping bool      // discarding the rest of a line that filled buf
	full     bool      // skipping, and no byte of the rest seen yet
	end      proc.Tail // the last bytes of output, for error details

	total   int64    // bytes written
	cut     bool     // a line was longer than max and was cut
	matched bool     // re matched at least once
	sigs    []string // distinct signature names, in order of appearance
}

func newOutput(re *regexp.Regexp, sigIndex, max int) *output {
	o := &output{re: re, sigIndex: sigIndex, max: max}
	if re != nil {
		o.buf = make([]byte, 0, max)
	}
	return o
}

// Write examines p; it never fails, so the command is never blocked on
// its output.
func (o *output) Write(p []byte) (int, error) {
	o.total += int64(len(p))
	o.end.Write(p)
	if o.re == nil {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		if o.full {
			// A line of exactly max bytes, then its newline, was
			// examined whole: only a byte past max is a cut.
			o.full, o.cut = false, p[0] != '\n'
		}
		if o.skipping {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				break
			}
			p, o.skipping = p[i+1:], false
			continue
		}
		if len(o.buf) == o.max {
			if i := bytes.LastIndexByte(o.buf, '\n'); i >= 0 {
				o.match(o.buf[:i+1])
				o.buf = o.buf[:copy(o.buf, o.buf[i+1:])]
				continue
			}
			// One line fills the buffer: examine what there is of it
			// and drop the rest, if there is any (see full).
			o.match(o.buf)
			o.buf, o.skipping, o.full = o.buf[:0], true, !o.cut
			continue
		}
		k := min(o.max-len(o.buf), len(p))
		o.buf = append(o.buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// flush examines the last, unterminated line. Call it once the output has
// ended.
func (o *output) flush() {
	if o.re != nil && len(o.buf) > 0 && !o.skipping {
		o.match(o.buf)
	}
	o.buf = o.buf[:0]
}

// match examines the lines in chunk. Line by line, because Go's regexp
// answers a yes or no on a short input several times faster than it
// searches a long one, and most lines answer no.
func (o *output) match(chunk []byte) {
	for len(chunk) > 0 {
		if o.matched && (o.sigIndex < 0 || len(o.sigs) >= proc.MaxFindings) {
			return // nothing more to learn
		}
		line := chunk
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			line, chunk = chunk[:i], chunk[i+1:]
		} else {
			chunk = nil
		}
		if !o.re.Match(line) {
			continue
		}
		for _, m := range o.re.FindAllSubmatchIndex(line, -1) {
			if m[1] == m[0] {
				continue // an empty match is not a finding
			}
			o.matched = true
			if o.sigIndex < 0 || m[2*o.sigIndex] < 0 {
				continue
			}
			o.sigs = proc.AppendSignature(o.sigs, string(line[m[2*o.sigIndex]:m[2*o.sigIndex+1]]))
		}
	}
}

// signatureNames returns the signatures found, or "unknown" for matches
// that named none.
func (o *output) signatureNames() []string {
	if len(o.sigs) == 0 {
		return []string{"unknown"}
	}
	return o.sigs
}

// findings returns the findings for an infected verdict.
func (o *output) findings() []scan.Finding {
	names := o.signatureNames()
	fs := make([]scan.Finding, len(names))
	for i, n := range names {
		fs[i] = scan.Finding{Signature: n}
	}
	return fs
}
