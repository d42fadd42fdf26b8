package proxy

import (
	"bytes"
	"io"
	"mime"
	"slices"
	"strings"
)

// Link rewriting. An index page may link to its files with absolute URLs
// (pypi.org's pages link to https://files.pythonhosted.org/...); a client
// that follows them fetches past the gate. With Config.RewriteLinks, HTML
// and JSON bodies are rewritten while they are stored: every absolute URL
// whose scheme is http or https (or that is scheme-relative, //host/...)
// and that starts with the base URL of the upstream or of one of
// Config.Hosts becomes a relative link to the path that origin is served
// under, so it resolves to the proxy wherever the proxy is mounted. The
// rewritten bytes are what is stored, scanned (when a rule says so) and
// served.

// linkRule is one origin whose absolute links are rewritten.
type linkRule struct {
	// host is "host[:port]" as in the origin's URL; it matches without
	// regard to case. An http and an https URL to the host both match:
	// whichever a page names, the proxy fetches the configured scheme.
	host string
	// path is the origin's base path with a trailing slash ("/" for
	// none); it matches exactly.
	path string
	// prefix is the local path the origin is served under, with a
	// leading and a trailing slash ("/" for the upstream).
	prefix string
}

// rewritable reports whether a body with media type mt (without
// parameters, lower case) has its links rewritten: HTML and JSON, which
// covers PEP 503 and PEP 691 index pages
// (application/vnd.pypi.simple.v1+json, …+html).
func rewritable(mt string) bool {
	switch mt {
	case "text/html", "application/xhtml+xml", "application/json":
		return true
	}
	return strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+html")
}

// mediaType is ct's media type in lower case without parameters, or "".
func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// relPrefix is the link from a page at the local path page to the local
// path prefix: "../../files/" from /simple/pkg/ to /files/.
func relPrefix(page, prefix string) string {
	dir := page[:strings.LastIndexByte(page, '/')+1]
	depth := strings.Count(dir, "/") - 1
	if depth <= 0 {
		// "./" keeps a first segment with a colon from reading as a
		// scheme.
		return "./" + prefix[1:]
	}
	return strings.Repeat("../", depth) + prefix[1:]
}

// lookback is how many bytes before a "//" a URL's start may lie: the
// scheme "https:" and the byte before it.
const lookback = 7

// linkRewriter rewrites links in a stream written to it and writes the
// result to dst. It holds back at most one rule's length plus lookback
// bytes between writes, so its memory does not grow with the body. Close
// writes what is held back.
type linkRewriter struct {
	dst   io.Writer
	rules []linkRule // longest first
	to    []string   // each rule's replacement, relative to the page
	// maxPat is the longest "//host/path/" of the rules.
	maxPat int
	buf    []byte
	// scan is where the search for the next "//" resumes in buf.
	scan int
	// prev is the byte before buf[0] once some of the stream is written
	// out (begun); before that buf[0] is the stream's first byte. A flag
	// and not a 0 for "none": a page may have a NUL byte before a "//".
	prev  byte
	begun bool
	err   error
}

// newLinkRewriter returns a rewriter for a page at local path page.
func newLinkRewriter(dst io.Writer, rules []linkRule, page string) *linkRewriter {
	w := &linkRewriter{dst: dst, rules: slices.Clone(rules)}
	slices.SortStableFunc(w.rules, func(a, b linkRule) int {
		return (len(b.host) + len(b.path)) - (len(a.host) + len(a.path))
	})
	for _, r := range w.rules {
		w.to = append(w.to, relPrefix(page, r.prefix))
		w.maxPat = max(w.maxPat, 2+len(r.host)+len(r.path))
	}
	return w
}

// Write rewrites p. It reports len(p) unless writing to dst failed.
func (w *linkRewriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	w.process(false)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Close writes the bytes held back. It does not close dst.
func (w *linkRewriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.process(true)
	return w.err
}

func (w *linkRewriter) emit(b []byte) {
	if w.err == nil && len(b) > 0 {
		_, w.err = w.dst.Write(b)
	}
}

var slashes = []byte("//")

// process rewrites what it can of w.buf and writes it out; with final,
// everything.
func (w *linkRewriter) process(final bool) {
	b := w.buf
	out := 0 // b[:out] is written out (or replaced)
	i := w.scan
	for {
		k := bytes.Index(b[i:], slashes)
		if k < 0 {
			// A '/' at the end may begin a "//".
			i = max(i, len(b)-1)
			break
		}
		i += k
		if !final && len(b)-i < w.maxPat {
			break // the URL's host and path are not all here yet
		}
		if start, end, r := w.match(b, i, out); r >= 0 {
			w.emit(b[out:start])
			w.emit([]byte(w.to[r]))
			out, i = end, end
			continue
		}
		i++
	}
	// A URL found later starts at most lookback bytes before its "//".
	safe := i - lookback
	if final {
		safe = len(b)
	}
	if safe > out {
		w.emit(b[out:safe])
		out = safe
	}
	if out > 0 {
		w.prev, w.begun = b[out-1], true
	}
	n := copy(w.buf, b[out:])
	w.buf = w.buf[:n]
	w.scan = max(i-out, 0)
}

// match looks at the "//" at b[i:] for a URL to one of the rules' origins
// and returns where the URL starts (its scheme, if any), where the part
// to replace ends and the rule, or rule -1. Bytes before out are no
// longer part of the text a URL may start in.
func (w *linkRewriter) match(b []byte, i, out int) (start, end, rule int) {
	start = i
	switch {
	case i >= 6 && bytes.EqualFold(b[i-6:i], []byte("https:")):
		start = i - 6
	case i >= 5 && bytes.EqualFold(b[i-5:i], []byte("http:")):
		start = i - 5
	}
	if start < out {
		return 0, 0, -1
	}
	prev, first := w.prev, !w.begun
	if start > 0 {
		prev, first = b[start-1], false
	}
	if start == i {
		// Scheme-relative: only where a URL begins, not inside a path
		// ("http://a//b") or after another scheme ("ftp://").
		if !first && !strings.ContainsRune(" \t\r\n\"'=(<>,[", rune(prev)) {
			return 0, 0, -1
		}
	} else if !first && isSchemeByte(prev) {
		return 0, 0, -1 // "git+https://": another scheme
	}
	h := i + 2
	for r, rule := range w.rules {
		end := h + len(rule.host) + len(rule.path)
		if end > len(b) {
			continue
		}
		if bytes.EqualFold(b[h:h+len(rule.host)], []byte(rule.host)) && string(b[h+len(rule.host):end]) == rule.path {
			return start, end, r
		}
	}
	return 0, 0, -1
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}
