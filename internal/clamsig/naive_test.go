package clamsig

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The reference matcher: each body signature becomes a Go regular
// expression over the whole buffer, written from the hex text by its own
// small translator (not the package's parser), and hashes are computed
// directly. Bytes are mapped one to one onto the runes U+0000..U+00FF so
// that "." and {n,m} count bytes.

func latin1(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// hexToRegexp translates a hex signature to a regular expression.
func hexToRegexp(h string) (string, error) {
	var sb strings.Builder
	isHex := func(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }
	for i := 0; i < len(h); {
		switch c := h[i]; {
		case c == '*':
			sb.WriteString(`.*?`)
			i++
		case c == '{':
			j := strings.IndexByte(h[i:], '}')
			if j < 0 {
				return "", fmt.Errorf("unclosed {")
			}
			in := h[i+1 : i+j]
			a, b, dash := strings.Cut(in, "-")
			switch {
			case !dash:
				fmt.Fprintf(&sb, `.{%s}`, a)
			case a == "":
				fmt.Fprintf(&sb, `.{0,%s}`, b)
			case b == "":
				fmt.Fprintf(&sb, `.{%s,}`, a)
			default:
				fmt.Fprintf(&sb, `.{%s,%s}`, a, b)
			}
			i += j + 1
		case c == '(':
			j := strings.IndexByte(h[i:], ')')
			if j < 0 {
				return "", fmt.Errorf("unclosed (")
			}
			sb.WriteString(`(?:`)
			for k, alt := range strings.Split(h[i+1:i+j], "|") {
				if k > 0 {
					sb.WriteByte('|')
				}
				for n := 0; n+1 < len(alt); n += 2 {
					fmt.Fprintf(&sb, `\x{%s}`, alt[n:n+2])
				}
			}
			sb.WriteString(`)`)
			i += j + 1
		default:
			if i+1 >= len(h) {
				return "", fmt.Errorf("odd")
			}
			d := h[i+1]
			switch {
			case c == '?' && d == '?':
				sb.WriteString(`.`)
			case c == '?' && isHex(d):
				sb.WriteString(`[`)
				for hi := range 16 {
					fmt.Fprintf(&sb, `\x{%x%c}`, hi, d)
				}
				sb.WriteString(`]`)
			case isHex(c) && d == '?':
				fmt.Fprintf(&sb, `[\x{%c0}-\x{%cf}]`, c, c)
			case isHex(c) && isHex(d):
				fmt.Fprintf(&sb, `\x{%c%c}`, c, d)
			default:
				return "", fmt.Errorf("bad %q", h[i:i+2])
			}
			i += 2
		}
	}
	return sb.String(), nil
}

// naiveBody reports whether a body signature matches data. With an
// offset it tries every allowed start in turn.
func naiveBody(hexsig string, off Offset, data []byte) (bool, error) {
	re, err := hexToRegexp(hexsig)
	if err != nil {
		return false, err
	}
	if off.Any {
		rx, err := regexp.Compile(`(?s)` + re)
		if err != nil {
			return false, err
		}
		return rx.MatchString(latin1(data)), nil
	}
	rx, err := regexp.Compile(`(?s)^(?:` + re + `)`)
	if err != nil {
		return false, err
	}
	lo := off.N
	if off.FromEOF {
		lo = int64(len(data)) - off.N
	}
	for s := max(lo, 0); s <= lo+off.Shift && s <= int64(len(data)); s++ {
		if rx.MatchString(latin1(data[s:])) {
			return true, nil
		}
	}
	return false, nil
}

// naiveMatch returns the sorted names of db's signatures that match data.
func naiveMatch(db *DB, data []byte) ([]string, error) {
	var names []string
	for _, b := range db.Bodies {
		ok, err := naiveBody(b.Hex, b.Offset, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Hex, err)
		}
		if ok {
			names = append(names, b.Name)
		}
	}
	m5, s1, s256 := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)
	sums := map[HashAlgo]string{MD5: string(m5[:]), SHA1: string(s1[:]), SHA256: string(s256[:])}
	for _, h := range db.Hashes {
		if string(h.Sum) == sums[h.Algo] && (h.Size == AnySize || h.Size == int64(len(data))) {
			names = append(names, h.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func matchNames(ms []Match) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}
