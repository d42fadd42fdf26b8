package proxy

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/testenv"
)

// wheel builds a minimal valid wheel for name 1.0.
func wheel(t *testing.T, name string) []byte {
	t.Helper()
	files := []struct{ name, body string }{
		{name + "/__init__.py", "VALUE = 1\n"},
		{name + "-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\nSummary: lazaret proxy test package\n"},
		{name + "-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: lazaret-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.body))
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString(name + "-1.0.dist-info/RECORD,,\n")
	w, err := zw.Create(name + "-1.0.dist-info/RECORD")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pypi serves a PEP 503 simple index on up: cleanpkg as a wheel, and
// badpkg as an "sdist" whose bytes are EICAR. Without files, the files are
// on up and the links relative, as in most PEP 503 pages; with files, the
// files are there and every link is absolute, as on pypi.org (whose pages
// link to https://files.pythonhosted.org/...). Links carry the files'
// hashes.
func pypi(t *testing.T, up, files *upstream) {
	whl := wheel(t, "cleanpkg")
	bodies := map[string][]byte{
		"cleanpkg-1.0-py3-none-any.whl": whl,
		"badpkg-1.0.tar.gz":             testenv.EICAR,
	}
	const html = "text/html; charset=utf-8"
	index, link := "", "../../packages/"
	if files != nil {
		index, link = up.URL+"/simple/", files.URL+"/packages/"
	} else {
		files = up
	}
	up.set("/simple/", upFile{ctype: html, body: fmt.Appendf(nil, `<!DOCTYPE html><html><body>
<a href="%scleanpkg/">cleanpkg</a>
<a href="%sbadpkg/">badpkg</a>
</body></html>`, index, index)})
	for file, body := range bodies {
		project := file[:strings.IndexByte(file, '-')]
		files.set("/packages/"+file, upFile{body: body, ctype: "application/octet-stream"})
		up.set("/simple/"+project+"/", upFile{ctype: html, body: fmt.Appendf(nil, `<!DOCTYPE html><html><body>
<a href="%s%s#sha256=%s">%s</a>
</body></html>`, link, file, sha(body), file)})
	}
}

// pipDownload runs pip download through the proxy.
func pipDownload(t *testing.T, index, dest, project string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-m", "pip", "download", "--no-deps", "--no-cache-dir",
		"--disable-pip-version-check", "--retries", "0", "--timeout", "30",
		"--index-url", index, "--dest", dest, project)
	env := []string{"HOME=" + t.TempDir(), "PIP_CONFIG_FILE=" + os.DevNull, "PIP_NO_INPUT=1"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") || strings.HasPrefix(k, "PIP_") || k == "HOME" {
			continue // no proxy between pip and the gate, no user pip settings
		}
		env = append(env, kv)
	}
	cmd.Env = env
	return cmd.CombinedOutput()
}

// TestPipThroughProxy: a real client. pip gets the clean package through
// the gate and fails on the infected one, which never reaches its folder:
// with an index that links relatively to files on the same upstream, and
// with one that links with absolute URLs to a second upstream (pypi.org
// and files.pythonhosted.org), whose links the proxy rewrites.
func TestPipThroughProxy(t *testing.T) {
	if err := exec.Command("python3", "-m", "pip", "--version").Run(); err != nil {
		testenv.Require(t, "python3 -m pip")
	}
	for _, absolute := range []bool{false, true} {
		name := "relative links"
		if absolute {
			name = "absolute links to a second host"
		}
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t)
			files, filesAt := up, "/packages/"
			cfg := Config{Upstream: up.URL,
				PassThrough: []Rule{{PathPrefix: "/simple/", ContentTypes: []string{"text/html"}, Scan: false, MaxAge: time.Minute}}}
			if absolute {
				files = newUpstream(t)
				pypi(t, up, files)
				cfg.RewriteLinks = true
				cfg.Hosts = []Host{{Prefix: "/files/", Upstream: files.URL}}
			} else {
				pypi(t, up, nil)
			}
			_, srv := startProxy(t, cfg)
			pipThroughProxy(t, srv.URL, files)
			if absolute {
				// pip followed the rewritten links: the files came from
				// the second host, through the gate, and the pages it got
				// name neither upstream.
				if n := files.count(filesAt + "cleanpkg-1.0-py3-none-any.whl"); n != 1 {
					t.Errorf("the file host saw %d GETs of the wheel, want 1", n)
				}
				for _, page := range []string{"/simple/", "/simple/cleanpkg/", "/simple/badpkg/"} {
					a := get(t, srv.URL+page)
					if a.status != http.StatusOK || bytes.Contains(a.body, []byte(files.URL)) || bytes.Contains(a.body, []byte(up.URL)) {
						t.Errorf("%s: got %d %s, want 200 with no link past the gate", page, a.status, a.body)
					}
				}
			}
		})
	}
}

func pipThroughProxy(t *testing.T, proxyURL string, files *upstream) {
	t.Helper()
	index := proxyURL + "/simple/"
	t.Run("clean", func(t *testing.T) {
		dest := t.TempDir()
		out, err := pipDownload(t, index, dest, "cleanpkg")
		if err != nil {
			t.Fatalf("pip download cleanpkg: %v\n%s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(dest, "cleanpkg-1.0-py3-none-any.whl"))
		if err != nil {
			t.Fatalf("the wheel is not in the folder: %v\n%s", err, out)
		}
		files.mu.Lock()
		want := files.files["/packages/cleanpkg-1.0-py3-none-any.whl"].body
		files.mu.Unlock()
		if !bytes.Equal(got, want) {
			t.Errorf("the wheel pip got differs from the upstream's")
		}
	})
	t.Run("infected", func(t *testing.T) {
		dest := t.TempDir()
		out, err := pipDownload(t, index, dest, "badpkg")
		if err == nil {
			t.Fatalf("pip download badpkg succeeded, want a failure\n%s", out)
		}
		if !bytes.Contains(out, []byte("409")) {
			t.Errorf("pip's output does not name the 409:\n%s", out)
		}
		if des, _ := os.ReadDir(dest); len(des) != 0 {
			t.Errorf("files reached pip's folder: %v", des)
		}
	})
	if n := files.count("/packages/badpkg-1.0.tar.gz"); n != 1 {
		t.Errorf("upstream saw %d GETs of the infected file, want 1", n)
	}
	// The index pages were proxied unscanned, the package files scanned.
	a := get(t, proxyURL+"/simple/cleanpkg/")
	if a.status != http.StatusOK || a.header.Get("X-Lazaret-Verdict") != "unscanned" {
		t.Errorf("index page: got %d, verdict %q", a.status, a.header.Get("X-Lazaret-Verdict"))
	}
}
