package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/server"
	"github.com/lazaret/lazaret/internal/testenv"
)

func startServer(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.Engines = "127.0.0.1:0", t.TempDir(), config.DefaultEngines()
	a, err := server.Start(context.Background(), cfg, server.Options{HTTP: true, Workers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return "http://" + a.Addr()
}

func countJobs(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/v1/jobs?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Jobs []json.RawMessage }
	json.NewDecoder(resp.Body).Decode(&page)
	return len(page.Jobs)
}

func TestScanServer(t *testing.T) {
	base := startServer(t)
	dir := t.TempDir()
	eicar := write(t, dir, "eicar.com", testenv.EICAR)
	clean := write(t, dir, "clean.txt", []byte("hello\n"))
	want := eicar + ": Eicar-Test-Signature FOUND\n" + clean + ": OK\n"
	code, out, errOut := run(t, "", "scan", "--server", base, eicar, clean)
	if code != ExitInfected || out != want {
		t.Fatalf("got %d %q (stderr %q), want 1 %q", code, out, errOut, want)
	}
	if n := countJobs(t, base); n != 2 {
		t.Fatalf("got %d jobs on the server, want 2", n)
	}
	// Known content: answered from the verdict cache, nothing uploaded.
	code, out, _ = run(t, clean+"\n"+eicar+"\n", "scan", "--server", base, "--file-list", "-")
	if code != ExitInfected || out != clean+": OK\n"+eicar+": Eicar-Test-Signature FOUND\n" {
		t.Errorf("second run: got %d %q", code, out)
	}
	if n := countJobs(t, base); n != 2 {
		t.Errorf("got %d jobs after the hash-first run, want still 2 (no upload)", n)
	}
	// Standard input is uploaded.
	code, out, _ = run(t, string(testenv.EICAR), "scan", "--server", base, "--json", "-")
	if code != ExitInfected || !bytes.Contains([]byte(out), []byte(`"verdict":"infected"`)) {
		t.Errorf("stdin: got %d %q", code, out)
	}
}

func TestScanServerDown(t *testing.T) {
	clean := write(t, t.TempDir(), "clean.txt", []byte("hello\n"))
	code, out, errOut := run(t, "", "scan", "--server", "http://127.0.0.1:1", clean)
	if code != ExitError || out != clean+": ERROR engine_error\n" || !strings.Contains(errOut, "connection refused") {
		t.Errorf("got %d %q %q, want 2 and an error naming the refusal", code, out, errOut)
	}
	code, _, _ = run(t, "", "scan", "--server", "ftp://x", clean)
	if code != ExitError {
		t.Errorf("bad URL: got %d, want 2", code)
	}
}
