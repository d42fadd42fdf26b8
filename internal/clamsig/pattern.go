package clamsig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on one body signature. They keep the matcher's window (and so
// its memory) small whatever a signature file says.
const (
	// MaxPartLength is the longest a part of a body signature (the bytes
	// between two unbounded wildcards) may match.
	MaxPartLength = 64 << 10
	// MaxParts is the most parts one body signature may have.
	MaxParts = 64
	// anchorLen is the length of an anchor when the part has a static run
	// that long; the rest of the run is verified around a hit. Four bytes
	// are one machine load, and already make false hits rare.
	anchorLen = 4
)

type elemKind uint8

const (
	elemLit  elemKind = iota // a run of fixed bytes
	elemMask                 // one byte with a fixed nibble: b&mask == val
	elemAlt                  // one of several strings of equal length
	elemGap                  // min..max bytes of anything
)

// elem is one element of a part.
type elem struct {
	kind     elemKind
	lit      []byte   // elemLit
	val      byte     // elemMask
	mask     byte     // elemMask
	alts     [][]byte // elemAlt
	min, max int      // elemGap
}

// length is the number of bytes a non-gap element matches.
func (e *elem) length() int {
	switch e.kind {
	case elemLit:
		return len(e.lit)
	case elemMask:
		return 1
	case elemAlt:
		return len(e.alts[0])
	}
	return 0
}

// matchAt reports whether a non-gap element matches p, which holds at least
// length() bytes.
func (e *elem) matchAt(p []byte) bool {
	switch e.kind {
	case elemLit:
		return string(p[:len(e.lit)]) == string(e.lit)
	case elemMask:
		return p[0]&e.mask == e.val
	case elemAlt:
		n := len(e.alts[0])
		for _, a := range e.alts {
			if string(p[:n]) == string(a) {
				return true
			}
		}
	}
	return false
}

// part is a run of a body signature between unbounded wildcards. It
// matches a bounded number of bytes, so it can be verified in a bounded
// window around its anchor.
type part struct {
	// gapBefore is the least number of bytes between the end of the
	// previous part and the start of this one (0 for "*", n for "{n-}").
	gapBefore int
	anchor    []byte
	// pre are the elements before the anchor, post those after it.
	pre, post       []elem
	preMax, postMax int // the most bytes pre and post can match
	preMin, postMin int
	minLen, maxLen  int
}

// pattern is a parsed hex signature.
type pattern struct {
	parts []part
}

// errHex wraps every hex signature error so that messages read
// "hex signature: ...".
var errHex = errors.New("hex signature")

func hexErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHex, fmt.Sprintf(format, args...))
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parsePattern parses a ClamAV extended hex signature: hex bytes, "??",
// nibble wildcards "a?" and "?a", gaps "{n}", "{-n}", "{n-m}", unbounded
// gaps "*" and "{n-}", and alternatives "(aa|bb)" of equal length.
func parsePattern(s string) (*pattern, error) {
	if s == "" {
		return nil, hexErr("empty")
	}
	var (
		parts []part
		elems []elem
		gap   = 0 // gapBefore of the part being built
	)
	addLit := func(b byte) {
		if n := len(elems); n > 0 && elems[n-1].kind == elemLit {
			elems[n-1].lit = append(elems[n-1].lit, b)
			return
		}
		elems = append(elems, elem{kind: elemLit, lit: []byte{b}})
	}
	addGap := func(lo, hi int) {
		if n := len(elems); n > 0 && elems[n-1].kind == elemGap {
			elems[n-1].min += lo
			elems[n-1].max += hi
			return
		}
		elems = append(elems, elem{kind: elemGap, min: lo, max: hi})
	}
	endPart := func(nextGap int) error {
		if len(elems) == 0 {
			return hexErr("empty part %d", len(parts)+1)
		}
		p, err := newPart(elems, gap)
		if err != nil {
			return fmt.Errorf("%w: part %d: %v", errHex, len(parts)+1, err)
		}
		if len(parts) == MaxParts {
			return hexErr("more than %d parts", MaxParts)
		}
		parts = append(parts, p)
		elems, gap = nil, nextGap
		return nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '*':
			if len(elems) == 0 {
				return nil, hexErr("misplaced wildcard at offset %d", i)
			}
			if err := endPart(0); err != nil {
				return nil, err
			}
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, hexErr("unclosed { at offset %d", i)
			}
			lo, hi, err := parseRange(s[i+1 : i+end])
			if err != nil {
				return nil, hexErr("offset %d: %v", i, err)
			}
			if len(elems) == 0 {
				return nil, hexErr("misplaced gap at offset %d", i)
			}
			if hi < 0 {
				if err := endPart(lo); err != nil {
					return nil, err
				}
			} else {
				addGap(lo, hi)
			}
			i += end + 1
		case c == '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				return nil, hexErr("unclosed ( at offset %d", i)
			}
			alts, err := parseAlts(s[i+1 : i+end])
			if err != nil {
				return nil, hexErr("offset %d: %v", i, err)
			}
			if len(alts) == 1 {
				for _, b := range alts[0] {
					addLit(b)
				}
			} else {
				elems = append(elems, elem{kind: elemAlt, alts: alts})
			}
			i += end + 1
		case c == '!' || c == '[' || c == ')' || c == '|' || c == '}':
			return nil, hexErr("unsupported or misplaced %q at offset %d", c, i)
		default:
			if i+1 >= len(s) {
				return nil, hexErr("odd length")
			}
			d := s[i+1]
			hi, okh := unhex(c)
			lo, okl := unhex(d)
			switch {
			case okh && okl:
				addLit(hi<<4 | lo)
			case c == '?' && d == '?':
				addGap(1, 1)
			case c == '?' && okl:
				elems = append(elems, elem{kind: elemMask, val: lo, mask: 0x0f})
			case okh && d == '?':
				elems = append(elems, elem{kind: elemMask, val: hi << 4, mask: 0xf0})
			case (okh || c == '?') && !okl && d != '?' && strings.IndexByte("*{(", d) >= 0:
				return nil, hexErr("odd length")
			default:
				return nil, hexErr("invalid character at offset %d", i)
			}
			i += 2
		}
	}
	if len(elems) == 0 {
		return nil, hexErr("ends with a wildcard")
	}
	if elems[len(elems)-1].kind == elemGap {
		return nil, hexErr("ends with a gap")
	}
	if err := endPart(0); err != nil {
		return nil, err
	}
	return &pattern{parts: parts}, nil
}

// maxGap bounds the numbers in "{n-m}"; larger gaps would only make the
// part longer than MaxPartLength anyway.
const maxGap = 1 << 20

// parseRange parses the inside of "{...}". hi < 0 means unbounded.
func parseRange(s string) (lo, hi int, err error) {
	num := func(t string) (int, error) {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || t[0] == '+' || t[0] == '-' {
			return 0, fmt.Errorf("bad number %q in gap", t)
		}
		if n > maxGap {
			return 0, fmt.Errorf("gap %d is longer than %d", n, maxGap)
		}
		return n, nil
	}
	a, b, dash := strings.Cut(s, "-")
	switch {
	case !dash:
		n, err := num(a)
		return n, n, err
	case a == "" && b == "":
		return 0, 0, errors.New("empty gap {-}")
	case a == "":
		n, err := num(b)
		return 0, n, err
	case b == "":
		n, err := num(a)
		return n, -1, err
	}
	if lo, err = num(a); err != nil {
		return 0, 0, err
	}
	if hi, err = num(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("gap {%d-%d} ends before it starts", lo, hi)
	}
	return lo, hi, nil
}

// parseAlts parses the inside of "(aa|bb)": plain hex strings of equal
// length.
func parseAlts(s string) ([][]byte, error) {
	var alts [][]byte
	for _, a := range strings.Split(s, "|") {
		if a == "" {
			return nil, errors.New("empty alternative")
		}
		if len(a)%2 != 0 {
			return nil, errors.New("odd length alternative")
		}
		b := make([]byte, len(a)/2)
		for j := range b {
			hi, ok1 := unhex(a[2*j])
			lo, ok2 := unhex(a[2*j+1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("alternative %q is not plain hex", a)
			}
			b[j] = hi<<4 | lo
		}
		if len(alts) > 0 && len(b) != len(alts[0]) {
			return nil, errors.New("alternatives of different lengths")
		}
		alts = append(alts, b)
	}
	return alts, nil
}

// newPart picks the part's anchor and splits its elements around it.
func newPart(elems []elem, gapBefore int) (part, error) {
	if elems[0].kind == elemGap {
		return part{}, errors.New("starts with a gap")
	}
	if elems[len(elems)-1].kind == elemGap {
		return part{}, errors.New("ends with a gap before a wildcard")
	}
	p := part{gapBefore: gapBefore}
	for _, e := range elems {
		if e.kind == elemGap {
			p.minLen += e.min
			p.maxLen += e.max
		} else {
			p.minLen += e.length()
			p.maxLen += e.length()
		}
	}
	if p.maxLen > MaxPartLength {
		return part{}, fmt.Errorf("matches up to %d bytes, more than %d", p.maxLen, MaxPartLength)
	}
	// The anchor is the best window of at most anchorLen bytes of any
	// literal run (clamd too needs a static run of two bytes).
	bestEl, bestOff, bestLen, bestScore := -1, 0, 0, -1<<31
	for i, e := range elems {
		if e.kind != elemLit || len(e.lit) < 2 {
			continue
		}
		n := min(len(e.lit), anchorLen)
		for off := 0; off+n <= len(e.lit); off++ {
			if sc := anchorScore(e.lit[off : off+n]); sc > bestScore {
				bestEl, bestOff, bestLen, bestScore = i, off, n, sc
			}
		}
	}
	if bestEl < 0 {
		return part{}, errors.New("no static run of at least 2 bytes")
	}
	lit := elems[bestEl].lit
	p.anchor = append([]byte(nil), lit[bestOff:bestOff+bestLen]...)
	p.pre = append(p.pre, elems[:bestEl]...)
	if bestOff > 0 {
		p.pre = append(p.pre, elem{kind: elemLit, lit: lit[:bestOff]})
	}
	if rest := lit[bestOff+bestLen:]; len(rest) > 0 {
		p.post = append(p.post, elem{kind: elemLit, lit: rest})
	}
	p.post = append(p.post, elems[bestEl+1:]...)
	p.preMin, p.preMax = span(p.pre)
	p.postMin, p.postMax = span(p.post)
	return p, nil
}

// span returns the fewest and the most bytes es can match.
func span(es []elem) (lo, hi int) {
	for _, e := range es {
		if e.kind == elemGap {
			lo += e.min
			hi += e.max
		} else {
			lo += e.length()
			hi += e.length()
		}
	}
	return lo, hi
}

// anchorScore prefers long anchors of varied bytes: runs of zeros, 0xff
// and repeated bytes are common in real files and would make the automaton
// fire (and verify) far more often.
func anchorScore(b []byte) int {
	s := len(b) * 8
	for i, c := range b {
		if c == 0 || c == 0xff {
			s -= 5
		}
		if i > 0 && c == b[i-1] {
			s -= 4
		}
	}
	return s
}
