package proxy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testLinks are the origins of the rewriting tests: pypi.org as the
// upstream, its file host under /files/ and a host with a base path.
var testLinks = []linkRule{
	{host: "pypi.org", path: "/", prefix: "/"},
	{host: "files.pythonhosted.org", path: "/", prefix: "/files/"},
	{host: "127.0.0.1:8123", path: "/repo/", prefix: "/mirror/"},
}

// rewriteAll runs in through a rewriter for page, written in chunks of
// chunk bytes (0: at once).
func rewriteAll(t *testing.T, in []byte, page string, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := newLinkRewriter(&out, testLinks, page)
	if chunk == 0 {
		chunk = len(in) + 1
	}
	for b := in; len(b) > 0; {
		n := min(chunk, len(b))
		if k, err := w.Write(b[:n]); err != nil || k != n {
			t.Fatalf("write: %d, %v", k, err)
		}
		b = b[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRewriteGolden: each file in testdata/rewrite, rewritten for a page
// at the given path, must equal its .golden twin, however the bytes are
// split between writes. go test -run TestRewriteGolden -update rewrites
// the golden files.
func TestRewriteGolden(t *testing.T) {
	for _, tc := range []struct{ file, page string }{
		{"pep503.html", "/simple/cleanpkg/"},
		{"pep691.json", "/simple/cleanpkg/"},
		{"edges.html", "/simple/cleanpkg/"},
		{"root.html", "/"},
		{"mirror.html", "/mirror/x/index.html"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "rewrite", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "rewrite", tc.file+".golden")
			got := rewriteAll(t, in, tc.page, 0)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			for _, chunk := range []int{1, 2, 3, 7, 31, 64, 4096} {
				if got := rewriteAll(t, in, tc.page, chunk); !bytes.Equal(got, want) {
					t.Errorf("in chunks of %d: got:\n%s\nwant:\n%s", chunk, got, want)
				}
			}
		})
	}
}

func TestRewriteCases(t *testing.T) {
	for _, tc := range []struct {
		name, page, in, want string
	}{
		{"empty", "/simple/x/", "", ""},
		{"no links", "/simple/x/", "plain text // with slashes", "plain text // with slashes"},
		{"at the start", "/simple/x/", "https://files.pythonhosted.org/a", "../../files/a"},
		{"scheme-relative at the start", "/simple/x/", "//files.pythonhosted.org/a", "../../files/a"},
		{"at the end, cut short", "/simple/x/", `"https://files.pythonhosted.or`, `"https://files.pythonhosted.or`},
		{"one level", "/a", `"https://pypi.org/b"`, `"./b"`},
		{"two in a row", "/s/p/", "https://pypi.org/x https://pypi.org/y", "../../x ../../y"},
		{"adjacent", "/s/p/", "https://pypi.org/https://pypi.org/y", "../../../../y"},
		{"JSON escaped slashes are left", "/s/p/", `"https:\/\/files.pythonhosted.org\/a"`, `"https:\/\/files.pythonhosted.org\/a"`},
		{"a NUL byte is no URL's start", "/s/p/", "\x00//pypi.org/x", "\x00//pypi.org/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 5} {
				if got := string(rewriteAll(t, []byte(tc.in), tc.page, chunk)); got != tc.want {
					t.Errorf("chunks of %d: got %q, want %q", chunk, got, tc.want)
				}
			}
		})
	}
}

// TestRewriteBoundedMemory: a long page is rewritten with a buffer that
// does not grow with it.
func TestRewriteBoundedMemory(t *testing.T) {
	line := `<a href="https://files.pythonhosted.org/packages/ab/cd/pkg.whl#sha256=00">pkg.whl</a>` + "\n"
	in := []byte(strings.Repeat(line, 20000))
	var out bytes.Buffer
	w := newLinkRewriter(&out, testLinks, "/simple/pkg/")
	most := 0
	for b := in; len(b) > 0; {
		n := min(32<<10, len(b))
		w.Write(b[:n])
		b = b[n:]
		most = max(most, cap(w.buf))
	}
	w.Close()
	if most > 64<<10 {
		t.Errorf("the buffer grew to %d bytes for %d written in 32 KiB chunks", most, len(in))
	}
	want := strings.Repeat(strings.Replace(line, "https://files.pythonhosted.org/", "../../files/", 1), 20000)
	if out.String() != want {
		t.Errorf("the long page was not rewritten line by line")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRewriteWriteError(t *testing.T) {
	w := newLinkRewriter(failWriter{}, testLinks, "/")
	_, err := w.Write(bytes.Repeat([]byte("x"), 1000))
	if err == nil {
		err = w.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v, want the writer's error", err)
	}
}

func TestRelPrefix(t *testing.T) {
	for _, tc := range []struct{ page, prefix, want string }{
		{"/", "/", "./"},
		{"/", "/files/", "./files/"},
		{"/index.html", "/files/", "./files/"},
		{"/simple/", "/files/", "../files/"},
		{"/simple/pkg/", "/", "../../"},
		{"/simple/pkg/", "/files/", "../../files/"},
		{"/simple/pkg/index.json", "/files/", "../../files/"},
	} {
		if got := relPrefix(tc.page, tc.prefix); got != tc.want {
			t.Errorf("relPrefix(%q, %q): got %q, want %q", tc.page, tc.prefix, got, tc.want)
		}
	}
}

func TestRewritable(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8":             true,
		"application/vnd.pypi.simple.v1+json":  true,
		"application/vnd.pypi.simple.v1+html":  true,
		"application/json":                     true,
		"APPLICATION/JSON":                     true,
		"application/octet-stream":             false,
		"application/zip":                      false,
		"text/plain":                           false,
		"":                                     false,
		"text/html; charset=utf-8; broken=\"x": false,
	} {
		if got := rewritable(mediaType(ct)); got != want {
			t.Errorf("%q: got %t, want %t", ct, got, want)
		}
	}
}
