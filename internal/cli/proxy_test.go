package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/testenv"
)

// TestProxyCommandHostsAndMetrics: lazaret proxy with a second host whose
// links it rewrites, a cache bound and a metrics listener.
func TestProxyCommandHostsAndMetrics(t *testing.T) {
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/p/eicar.whl" {
			w.Write(testenv.EICAR)
			return
		}
		w.Write([]byte("wheel bytes"))
	}))
	defer files.Close()
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<a href="%s/p/ok.whl">ok</a>`, files.URL)
	}))
	defer index.Close()
	addrs := make([]string, 2)
	for i := range addrs {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb testenv.Buffer
	go func() {
		done <- Run(ctx, []string{"proxy", "--upstream", index.URL, "--listen", addrs[0], "--data-dir", t.TempDir(),
			"--pass-through", "/simple/", "--host", "/files/=" + files.URL, "--rewrite-links",
			"--cache-max-size", "1MiB", "--metrics-listen", addrs[1]},
			Env{Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }})
	}()
	get := func(url string) (int, string) {
		for range 100 {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never answered: %s", url, errb.String())
		return 0, ""
	}
	proxy := "http://" + addrs[0]
	if code, body := get(proxy + "/simple/x/"); code != 200 || body != `<a href="../../files/p/ok.whl">ok</a>` {
		t.Errorf("index: got %d %q, want the link rewritten", code, body)
	}
	if code, body := get(proxy + "/files/p/ok.whl"); code != 200 || body != "wheel bytes" {
		t.Errorf("file on the host: got %d %q", code, body)
	}
	if code, _ := get(proxy + "/files/p/eicar.whl"); code != 409 {
		t.Errorf("infected on the host: got %d, want 409", code)
	}
	code, out := get("http://" + addrs[1] + "/metrics")
	for _, want := range []string{
		`lazaret_proxy_requests_total{code="409",proxy="` + strings.TrimPrefix(index.URL, "http://") + `"} 1`,
		`lazaret_proxy_cache_max_bytes{proxy="` + strings.TrimPrefix(index.URL, "http://") + `"} 1.048576e+06`,
		`lazaret_scans_total{cached="false",reason="",verdict="infected"} 1`,
	} {
		if code != 200 || !strings.Contains(out, want+"\n") {
			t.Errorf("metrics: got %d, missing %s", code, want)
		}
	}
	cancel()
	if code := <-done; code != ExitClean {
		t.Errorf("exit %d: %s", code, errb.String())
	}

	for _, args := range [][]string{
		{"--host", "files=" + files.URL},
		{"--host", "/files/"},
		{"--cache-max-size", "lots"},
		{"--metrics-listen", "0.0.0.0:0"},
	} {
		args := append([]string{"proxy", "--upstream", index.URL, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)
		if code, _, errs := run(t, "", args...); code != ExitError {
			t.Errorf("%v: got %d (%s), want 2", args[6:], code, errs)
		}
	}
}
