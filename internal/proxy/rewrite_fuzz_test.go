package proxy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The link rewriter reads pages from an untrusted upstream. HTML and JSON
// bodies take the same path through it (rewritable only decides whether a
// body is rewritten), so one target covers both, seeded with both kinds.
// The fuzz targets check it against the promises of rewrite.go:
//
//   - Write reports len(p) and no error, Close no error, and between writes
//     at most maxPat+lookback bytes are held back;
//   - the output does not depend on how the input is split between writes;
//   - it is what modelRewrite, the rule in rewrite.go's comments applied to
//     the whole input at once, makes of it;
//   - it is at most growth(rules, page) times as long as the input: every
//     rewrite replaces at least a whole "//host/path/" with the relative
//     prefix, and every other byte is copied once;
//   - input with no "//host/path/" of a rule in it (in any case) comes out
//     unchanged;
//   - rewritten links are relative, so rewriting the output again leaves it
//     as it is;
//   - only bytes that can be part of a rewritten URL or of its replacement
//     change: quotes, brackets, backslashes, spaces and the like are kept in
//     order, so the markup around a link stays; valid JSON and valid UTF-8
//     stay valid.

// fuzzPages are the pages FuzzRewrite rewrites for, picked by a fuzzed
// byte: the root, one and two levels down, an index file, and a page deep
// enough that the relative prefix is longer than the URL it replaces.
var fuzzPages = []string{
	"/", "/index.html", "/simple/", "/simple/pkg/", "/simple/pkg/index.json",
	"/mirror/x/index.html", "/a/b/c/d/e/f/g/h/i/",
}

// FuzzRewrite runs the rewriter with testLinks over in for the page
// fuzzPages[page], whole, a byte at a time and in the chunk sizes cuts
// gives (see cutSize), and checks the properties listed above.
func FuzzRewrite(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "rewrite", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for i, name := range golden {
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		in, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(in, uint8(i), []byte{7, 31, 1})
	}
	long := strings.Repeat("x", 1500) + "https://files.pythonhosted.org/a" + strings.Repeat(" //pypi.org/", 40)
	for _, tc := range []struct {
		in   string
		page uint8
		cuts []byte
	}{
		// a prefix split across writes, at every length up to it
		{`<a href="https://files.pythonhosted.org/p/a.whl">`, 3, []byte{20, 3, 1, 2}},
		{`<a href="//files.pythonhosted.org/p/a.whl">`, 3, []byte{13, 1}},
		{"http://127.0.0.1:8123/repo/x", 5, []byte{9, 1, 4}},
		// a prefix, or part of one, at the very end
		{`x https://pypi.org/`, 0, []byte{1}},
		{`x https://pypi.org`, 0, []byte{2}},
		{`x https:/`, 0, []byte{8}},
		{`x /`, 0, nil},
		// adjacent, nested and overlapping prefixes
		{"https://pypi.org/https://pypi.org///pypi.org//files.pythonhosted.org/", 3, []byte{5}},
		{"///pypi.org/ https://https://pypi.org/ git+https://pypi.org/ ahttps://pypi.org/", 3, []byte{6}},
		// case, escapes and quoting
		{`HTTPS://PYPI.ORG/X HtTp://Files.PythonHosted.Org/y`, 1, []byte{3}},
		{`{"url":"https:\/\/files.pythonhosted.org\/a","u2":"\\//pypi.org/","u3":"https://pypi.org/\"x"}`, 4, []byte{11}},
		{`<a href=https&#x3a;//pypi.org/ b='//pypi.org/' c=(//pypi.org/) d=[//pypi.org/]>`, 2, []byte{4}},
		{"https%3A%2F%2Fpypi.org%2F //pypi.org%2F", 3, nil},
		// ports, look-alikes, a base path that is not quite there
		{"//127.0.0.1:8123/repo //127.0.0.1:8123/repo/ //127.0.0.1:81234/repo/ //pypi.org.evil/", 6, []byte{2, 200}},
		// bytes that are not UTF-8
		{"\xff\xfe//pypi.org/\x80 https://files.pythonhosted.org/\xc3", 3, []byte{1, 2}},
		// a long line, in large and small writes
		{long, 6, []byte{250, 63, 1}},
	} {
		f.Add([]byte(tc.in), tc.page, tc.cuts)
	}
	f.Fuzz(func(t *testing.T, in []byte, page uint8, cuts []byte) {
		pg := fuzzPages[int(page)%len(fuzzPages)]
		out := checkRewrite(t, in, testLinks, pg, cuts)

		if !hasPattern(in, testLinks) && !bytes.Equal(out, in) {
			t.Fatalf("page %s: no link to rewrite in %q, got %q, want it unchanged", pg, in, out)
		}
		if again := rewriteCuts(t, out, testLinks, pg, nil); !bytes.Equal(again, out) {
			t.Fatalf("page %s: rewriting %q again: got %q, want it unchanged", pg, out, again)
		}
		keep := kept(testLinks, pg)
		if a, b := project(in, keep), project(out, keep); !bytes.Equal(a, b) {
			t.Fatalf("page %s: %q -> %q: bytes outside URLs went from %q to %q", pg, in, out, a, b)
		}
		if json.Valid(in) && !json.Valid(out) {
			t.Fatalf("page %s: valid JSON %q became %q", pg, in, out)
		}
		if utf8.Valid(in) && !utf8.Valid(out) {
			t.Fatalf("page %s: valid UTF-8 %q became %q", pg, in, out)
		}
	})
}

// FuzzRewriteRules is FuzzRewrite's streaming checks with the rules
// fuzzed too: two origins, the upstream served at "/" and a host at
// "/files/", with any host and base path. Hosts and paths are made what
// New makes of an upstream URL: a host without '/' (lower-cased by New),
// a path that starts and ends with '/'. The properties that depend on the
// prefixes being relative links and on what bytes hosts are made of
// (stability, kept markup) are FuzzRewrite's alone.
func FuzzRewriteRules(f *testing.F) {
	f.Add([]byte(`<a href="https://up.example/base/x">`), "up.example", "/base/", "files.example:8443", "/", uint8(3), []byte{5})
	f.Add([]byte("//a/b/c/ //a/b/ //A/B/C/d"), "a", "/b/", "a", "/b/c/", uint8(2), []byte{1})
	f.Add([]byte("https://h//x//y/ //h//x/"), "h", "//x/", "h", "/", uint8(0), []byte{3, 1})
	f.Add([]byte("http://[::1]:80/p/ https://[::1]:80/"), "[::1]:80", "/p/", "x", "/", uint8(6), []byte{})
	f.Add([]byte("//\u212a/ //k/ //K/"), "k", "/", "\u017f", "/", uint8(1), []byte{2})
	f.Fuzz(func(t *testing.T, in []byte, host1, path1, host2, path2 string, page uint8, cuts []byte) {
		r1 := linkRule{host: fuzzHost(host1), path: fuzzPath(path1), prefix: "/"}
		r2 := linkRule{host: fuzzHost(host2), path: fuzzPath(path2), prefix: "/files/"}
		if r1.host == r2.host && r1.path == r2.path {
			r2.path += "x/" // New refuses an upstream served twice
		}
		rules := []linkRule{r1, r2}
		pg := fuzzPages[int(page)%len(fuzzPages)]
		out := checkRewrite(t, in, rules, pg, cuts)
		if !hasPattern(in, rules) && !bytes.Equal(out, in) {
			t.Fatalf("rules %q, page %s: no link to rewrite in %q, got %q, want it unchanged", rules, pg, in, out)
		}
	})
}

// checkRewrite rewrites in with rules for page whole, a byte at a time
// and in the chunks cuts gives, checks that the three agree with each
// other and with modelRewrite and that the output is no longer than the
// growth bound allows, and returns the output.
func checkRewrite(t *testing.T, in []byte, rules []linkRule, page string, cuts []byte) []byte {
	t.Helper()
	whole := rewriteCuts(t, in, rules, page, nil)
	if want := modelRewrite(in, rules, page); !bytes.Equal(whole, want) {
		t.Fatalf("rules %q, page %s: %q: got %q, want %q", rules, page, in, whole, want)
	}
	for _, c := range [][]byte{{1}, cuts} {
		if len(c) == 0 {
			continue
		}
		if got := rewriteCuts(t, in, rules, page, c); !bytes.Equal(got, whole) {
			t.Fatalf("rules %q, page %s: %q in writes of [%s]: got %q, want %q as when written whole",
				rules, page, in, cutSizes(c, len(in)), got, whole)
		}
	}
	if num, den := growth(rules, page); len(whole)*den > len(in)*num {
		t.Fatalf("rules %q, page %s: %d bytes became %d, want at most %d/%d times as many",
			rules, page, len(in), len(whole), num, den)
	}
	return whole
}

// rewriteCuts runs in through a rewriter with rules for page, in one
// write if cuts is empty, else in writes of cutSize(cuts[0]),
// cutSize(cuts[1]), … (round again when cuts runs out). A size of 0 is an
// empty write, followed by a write of one byte so that the loop ends. It
// checks the io.Writer contract and the bound on the bytes held back.
func rewriteCuts(t *testing.T, in []byte, rules []linkRule, page string, cuts []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := newLinkRewriter(&out, rules, page)
	write := func(p []byte) {
		t.Helper()
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("write of %d bytes: got %d, %v, want %d, nil", len(p), n, err, len(p))
		}
		if len(w.buf) > w.maxPat+lookback {
			t.Fatalf("rules %q: %d bytes held back, want at most %d", rules, len(w.buf), w.maxPat+lookback)
		}
	}
	if len(cuts) == 0 {
		write(in)
	}
	for b, k := in, 0; len(cuts) > 0 && len(b) > 0; k++ {
		n := cutSize(cuts[k%len(cuts)])
		if n == 0 {
			write(b[:0])
			n = 1
		}
		n = min(n, len(b))
		write(b[:n])
		b = b[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.Bytes()
}

// cutSize is the length of a write for the fuzzed byte c: 0 to 191 as it
// is, above that in steps of 256 bytes up to 16 KiB.
func cutSize(c byte) int {
	if c < 192 {
		return int(c)
	}
	return (int(c) - 191) * 256
}

// cutSizes lists the lengths of the first writes rewriteCuts makes of n
// bytes, for failure messages.
func cutSizes(cuts []byte, n int) string {
	var s []string
	for k := 0; n > 0; k++ {
		if k == 16 {
			return strings.Join(s, " ") + " …"
		}
		c := max(cutSize(cuts[k%len(cuts)]), 1)
		s = append(s, strconv.Itoa(min(c, n)))
		n -= c
	}
	return strings.Join(s, " ")
}

// modelRewrite is the rule of rewrite.go's comments applied to all of in
// at once, a position at a time, with nothing held back: where an http or
// https URL (scheme in any case, not the tail of a longer scheme such as
// git+https) or a scheme-relative one (at the start or after one of
// ` \t\r\n"'=(<>,[`) begins, and its "//host/path/" is a rule's host (in
// any case) and path, the URL up to there becomes the relative prefix;
// rules with a longer host and path first, and the text resumes after the
// replaced part.
func modelRewrite(in []byte, rules []linkRule, page string) []byte {
	rules = slices.Clone(rules)
	slices.SortStableFunc(rules, func(a, b linkRule) int {
		return len(b.host) + len(b.path) - (len(a.host) + len(a.path))
	})
	var out []byte
	for p := 0; p < len(in); {
		if n, r := modelURL(in, p, rules); n > 0 {
			out = append(out, relPrefix(page, rules[r].prefix)...)
			p += n
			continue
		}
		out = append(out, in[p])
		p++
	}
	return out
}

// modelURL reports the length of the part of a rule's URL that starts at
// in[p] and that rule, or 0.
func modelURL(in []byte, p int, rules []linkRule) (n, rule int) {
	rest := in[p:]
	scheme := 0
	switch {
	case len(rest) >= 8 && bytes.EqualFold(rest[:6], []byte("https:")) && string(rest[6:8]) == "//":
		scheme = 6
	case len(rest) >= 7 && bytes.EqualFold(rest[:5], []byte("http:")) && string(rest[5:7]) == "//":
		scheme = 5
	case bytes.HasPrefix(rest, []byte("//")):
	default:
		return 0, -1
	}
	if p > 0 {
		prev := in[p-1]
		if scheme > 0 && isSchemeByte(prev) {
			return 0, -1
		}
		if scheme == 0 && !bytes.ContainsAny([]byte{prev}, " \t\r\n\"'=(<>,[") {
			return 0, -1
		}
	}
	rest = rest[scheme+2:]
	for r, rule := range rules {
		if len(rest) >= len(rule.host)+len(rule.path) &&
			bytes.EqualFold(rest[:len(rule.host)], []byte(rule.host)) &&
			string(rest[len(rule.host):len(rule.host)+len(rule.path)]) == rule.path {
			return scheme + 2 + len(rule.host) + len(rule.path), r
		}
	}
	return 0, -1
}

// growth is the most the rewriter can lengthen a page, as num/den: a
// rewrite replaces at least "//host/path/" (its scheme too, if any) with
// the relative prefix, and copies every other byte once, so the output is
// at most max(1, max over the rules of len(prefix)/len("//host/path/"))
// times the input.
func growth(rules []linkRule, page string) (num, den int) {
	num, den = 1, 1
	for _, r := range rules {
		to, pat := len(relPrefix(page, r.prefix)), 2+len(r.host)+len(r.path)
		if to*den > num*pat {
			num, den = to, pat
		}
	}
	return num, den
}

// hasPattern reports whether in has "//host/path/" of a rule in it, the
// host in any case: where there is none, there is no link to rewrite,
// whatever comes before the "//".
func hasPattern(in []byte, rules []linkRule) bool {
	for i := 0; ; i++ {
		k := bytes.Index(in[i:], []byte("//"))
		if k < 0 {
			return false
		}
		i += k
		rest := in[i+2:]
		for _, r := range rules {
			if len(rest) >= len(r.host)+len(r.path) && bytes.EqualFold(rest[:len(r.host)], []byte(r.host)) &&
				bytes.HasPrefix(rest[len(r.host):], []byte(r.path)) {
				return true
			}
		}
	}
}

// kept marks the bytes a rewrite with rules for page can neither remove
// nor write: those of no scheme, host, path or relative prefix, in either
// case.
func kept(rules []linkRule, page string) *[256]bool {
	var k [256]bool
	for i := range k {
		k[i] = true
	}
	drop := func(s string) {
		for _, c := range []byte(s + strings.ToUpper(s) + strings.ToLower(s)) {
			k[c] = false
		}
	}
	drop("https://")
	for _, r := range rules {
		drop(r.host)
		drop(r.path)
		drop(relPrefix(page, r.prefix))
	}
	return &k
}

// project is the bytes of b that keep marks, in order.
func project(b []byte, keep *[256]bool) []byte {
	var p []byte
	for _, c := range b {
		if keep[c] {
			p = append(p, c)
		}
	}
	return p
}

// fuzzHost makes s a host as New has it: not empty, without '/', in
// lower case.
func fuzzHost(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "/", ""))
	if s == "" {
		return "h"
	}
	return s
}

// fuzzPath makes s a base path as New has it: starting and ending with
// '/'.
func fuzzPath(s string) string {
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}
