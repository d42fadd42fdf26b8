package clamd

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

func zipOf(t testing.TB, name string, data []byte, flags uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// modes are the two connection strategies; every behaviour must hold
// for both.
var modes = []struct {
	name        string
	idleTimeout time.Duration
}{
	{"session", 0},
	{"fresh", -1},
}

func TestScanDetects(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	eicarZip := zipOf(t, "eicar.com", testenv.EICAR, 0)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEngine(t, Config{Addresses: []string{addr}, IdleTimeout: m.idleTimeout})
			small := newEngine(t, Config{Addresses: []string{addr}, IdleTimeout: m.idleTimeout, ChunkSize: 1010})
			for _, tc := range []struct {
				name      string
				e         *Engine
				data      []byte
				verdict   scan.Verdict
				reason    scan.Reason
				signature string
			}{
				{"eicar", e, testenv.EICAR, scan.Infected, "", testenv.Unofficial(testenv.EICARSignature)},
				{"eicar in zip", e, eicarZip, scan.Infected, "", testenv.Unofficial(testenv.EICARSignature)},
				{"eicar in nested zip", e, zipOf(t, "inner.zip", eicarZip, 0), scan.Infected, "", testenv.Unofficial(testenv.EICARSignature)},
				{"hsb", e, testenv.HSBSample(), scan.Infected, "", testenv.Unofficial(testenv.HSBSignature)},
				{"ndb", e, testenv.NDBSample(), scan.Infected, "", testenv.Unofficial(testenv.NDBSignature)},
				// The marker at offset 1000 spans the first two chunks.
				{"ndb across chunks", small, testenv.NDBSample(), scan.Infected, "", testenv.Unofficial(testenv.NDBSignature)},
				{"random", e, randomBytes(16 << 10), scan.Clean, "", ""},
				{"random many chunks", small, randomBytes(100 << 10), scan.Clean, "", ""},
				{"empty", e, nil, scan.Clean, "", ""},
				{"encrypted zip", e, zipOf(t, "secret.txt", randomBytes(100), 0x1), scan.Skipped, scan.ReasonEncrypted, ""},
				{"clean after infected", e, randomBytes(1000), scan.Clean, "", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := scanBytes(t, tc.e, tc.data)
					if got.Verdict != tc.verdict || got.Reason != tc.reason {
						t.Fatalf("got %s/%q (%s), want %s/%q", got.Verdict, got.Reason, got.Detail, tc.verdict, tc.reason)
					}
					if tc.signature != "" && (len(got.Findings) != 1 || got.Findings[0].Signature != tc.signature || got.Findings[0].Engine != "clamav") {
						t.Errorf("got findings %+v, want %q from clamav", got.Findings, tc.signature)
					}
				})
			}
		})
	}
}

func TestScanSpooledFile(t *testing.T) {
	// A body spooled to a temporary file, several chunks long.
	addr := testenv.ClamdAddr(t)
	e := newEngine(t, Config{Addresses: []string{addr}})
	data := append(randomBytes(300<<10), testenv.EICAR...)
	b, err := spool.New(context.Background(), bytes.NewReader(data), spool.Options{MemLimit: -1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.InMemory() {
		t.Fatal("got an in-memory body, want a file")
	}
	// EICAR is detected at offset 0 only; so check the body is clean and
	// complete instead: a clean verdict needs every byte sent.
	res, err := e.Scan(context.Background(), b.Sample("big"))
	got := scan.Normalize("clamav", res, err)
	if got.Verdict != scan.Clean {
		t.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
	}
}

func TestScanUnixSocket(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEngine(t, Config{Addresses: []string{c.Unix}, IdleTimeout: m.idleTimeout})
			for i := range 3 {
				if got := scanBytes(t, e, testenv.EICAR); got.Verdict != scan.Infected {
					t.Fatalf("scan %d: got %s (%s), want infected", i, got.Verdict, got.Detail)
				}
				if got := scanBytes(t, e, randomBytes(2000)); got.Verdict != scan.Clean {
					t.Fatalf("scan %d: got %s (%s), want clean", i, got.Verdict, got.Detail)
				}
			}
		})
	}
}

// TestScanLimits checks clamd's two size traps against real daemons:
// over StreamMaxLength clamd answers an ERROR, and over MaxFileSize it
// stops scanning and (with AlertExceedsMax) says so with a heuristic name.
func TestScanLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		conf   []string
		size   int
		reason scan.Reason
	}{
		{"stream max length", []string{"StreamMaxLength 1M"}, 2 << 20, scan.ReasonTooLarge},
		{"max file size", []string{"MaxFileSize 1M", "AlertExceedsMax yes"}, 2 << 20, scan.ReasonLimitsExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.StartClamd(t, testenv.ClamdOptions{Conf: tc.conf})
			for _, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					e := newEngine(t, Config{Addresses: []string{c.TCP}, IdleTimeout: m.idleTimeout})
					for i := range 2 {
						got := scanBytes(t, e, randomBytes(tc.size))
						if got.Verdict != scan.Skipped || got.Reason != tc.reason {
							t.Fatalf("scan %d: got %s/%q (%s), want skipped/%q", i, got.Verdict, got.Reason, got.Detail, tc.reason)
						}
						// The engine keeps working after the failure.
						if got := scanBytes(t, e, randomBytes(1000)); got.Verdict != scan.Clean {
							t.Fatalf("scan %d after limit: got %s (%s), want clean", i, got.Verdict, got.Detail)
						}
					}
				})
			}
		})
	}
}

// onFildes answers zFILDES as given, and anything else (a streamed
// sample) with a clean reply, so that a case passes only if the sample
// really went as a descriptor.
func onFildes(reply string, hangup, wait bool) fakeHandler {
	return func(cmd string, id int) (string, bool, bool) {
		if cmd != "FILDES" {
			return "stream: OK\x00", false, false
		}
		return reply, hangup, wait
	}
}

// TestScanFailuresNotClean runs each way a clamd can fail and checks the
// result is not clean and carries the right reason.
func TestScanFailuresNotClean(t *testing.T) {
	shared := testenv.ClamdAddr(t)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T) []string // returns the addresses
		verdict  scan.Verdict
		reason   scan.Reason
		sentinel error
	}{
		{"refused", func(t *testing.T) []string { return []string{deadAddr(t)} }, scan.Error, scan.ReasonEngineError, ErrNoAddress},
		{"all addresses refused", func(t *testing.T) []string { return []string{deadAddr(t), deadAddr(t)} }, scan.Error, scan.ReasonEngineError, ErrNoAddress},
		{"unix socket missing", func(t *testing.T) []string { return []string{"unix://" + filepath.Join(t.TempDir(), "none.sock")} }, scan.Error, scan.ReasonEngineError, ErrNoAddress},
		{"killed clamd", func(t *testing.T) []string {
			c := testenv.StartClamd(t, testenv.ClamdOptions{})
			c.Kill()
			return []string{c.TCP}
		}, scan.Error, scan.ReasonEngineError, ErrNoAddress},
		{"clamd cannot spool the stream", func(t *testing.T) []string {
			// Without its TemporaryDirectory clamd drops the connection
			// instead of answering.
			c := testenv.StartClamd(t, testenv.ClamdOptions{})
			if err := os.RemoveAll(filepath.Join(c.Dir, "tmp")); err != nil {
				t.Fatal(err)
			}
			return []string{c.TCP}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"size limit error reply", func(t *testing.T) []string {
			c := testenv.StartClamd(t, testenv.ClamdOptions{Conf: []string{"StreamMaxLength 1K"}})
			return []string{c.TCP}
		}, scan.Skipped, scan.ReasonTooLarge, nil},
		{"error reply", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "stream: Can't allocate memory ERROR\x00", false, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrReplyError},
		{"cut-off reply", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "stream: O", true, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"ok without terminator", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "stream: OK", true, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"closed without reply", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "", true, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"reply to another command", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "!7: stream: OK\x00", false, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"garbage reply", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "!\x00\x00garbage\x00", false, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"overlong reply", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return strings.Repeat("x", 2*maxReply) + "\x00", false, false })
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"no answer", func(t *testing.T) []string {
			f := startFake(t, func(string, int) (string, bool, bool) { return "", false, true })
			return []string{f.addr}
		}, scan.Error, scan.ReasonTimeout, nil},
		{"one dead address, one healthy", func(t *testing.T) []string { return []string{deadAddr(t), shared} }, scan.Infected, "", nil},
		// The same failures when the sample goes as a descriptor (zFILDES).
		{"killed clamd, unix socket", func(t *testing.T) []string {
			c := testenv.StartClamd(t, testenv.ClamdOptions{})
			c.Kill()
			return []string{c.Unix}
		}, scan.Error, scan.ReasonEngineError, ErrNoAddress},
		{"fildes error reply", func(t *testing.T) []string {
			f := startFakeUnix(t, onFildes("fd[3]: lstat() failed. ERROR\x00", false, false))
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrReplyError},
		{"fildes cut-off reply", func(t *testing.T) []string {
			f := startFakeUnix(t, onFildes("fd[3]: O", true, false))
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"fildes closed without reply", func(t *testing.T) []string {
			f := startFakeUnix(t, onFildes("", true, false))
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"fildes reply to another command", func(t *testing.T) []string {
			f := startFakeUnix(t, onFildes("!7: fd[3]: OK\x00", false, false))
			return []string{f.addr}
		}, scan.Error, scan.ReasonEngineError, ErrUnexpectedReply},
		{"fildes no answer", func(t *testing.T) []string {
			f := startFakeUnix(t, onFildes("", false, true))
			return []string{f.addr}
		}, scan.Error, scan.ReasonTimeout, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := tc.setup(t)
			for _, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					e := newEngine(t, Config{Addresses: addrs, IdleTimeout: m.idleTimeout, Timeout: 500 * time.Millisecond})
					data := testenv.EICAR
					if tc.verdict != scan.Infected {
						// A sample clamd would call clean: only the
						// failure can make the result not clean.
						data = randomBytes(4000)
					}
					res, err := e.Scan(context.Background(), spool.Bytes(data).Sample("s"))
					got := scan.Normalize("clamav", res, err)
					if got.Verdict != tc.verdict || got.Reason != tc.reason {
						t.Fatalf("got %s/%q (%v), want %s/%q", got.Verdict, got.Reason, err, tc.verdict, tc.reason)
					}
					if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
						t.Errorf("got error %v, want one wrapping %v", err, tc.sentinel)
					}
				})
			}
		})
	}
}

func TestScanContext(t *testing.T) {
	f := startFake(t, func(string, int) (string, bool, bool) { return "", false, true })
	e := newEngine(t, Config{Addresses: []string{f.addr}})
	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := e.Scan(ctx, spool.Bytes(randomBytes(100)).Sample("s"))
		got := scan.Normalize("clamav", res, err)
		if got.Verdict != scan.Error || got.Reason != scan.ReasonTimeout {
			t.Errorf("got %s/%q (%v), want error/timeout", got.Verdict, got.Reason, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("got a scan of %v, want it bounded by the 100ms deadline", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		res, err := e.Scan(ctx, spool.Bytes(randomBytes(100)).Sample("s"))
		got := scan.Normalize("clamav", res, err)
		if got.Verdict != scan.Error || !errors.Is(err, context.Canceled) {
			t.Errorf("got %s/%q (%v), want an error wrapping context.Canceled", got.Verdict, got.Reason, err)
		}
	})
}

func TestScanBodyFailures(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testScanBodyFailures(t, newEngine(t, Config{Addresses: []string{addr}, ChunkSize: 1024, IdleTimeout: m.idleTimeout}))
		})
	}
}

func testScanBodyFailures(t *testing.T, e *Engine) {
	data := randomBytes(5000)
	for _, tc := range []struct {
		name string
		s    scan.Sample
	}{
		{"open fails", scan.Sample{Name: "s", Size: 10, Body: body{openErr: errors.New("gone")}}},
		{"read fails mid-stream", scan.Sample{Name: "s", Size: 10000, Body: body{data: data, readErr: errors.New("disk error")}}},
		{"body shorter than size", scan.Sample{Name: "s", Size: int64(len(data)) + 1, Body: body{data: data}}},
		{"no body", scan.Sample{Name: "s", Size: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Scan(context.Background(), tc.s)
			got := scan.Normalize("clamav", res, err)
			if got.Verdict != scan.Error || got.Reason != scan.ReasonIO {
				t.Errorf("got %s/%q (%v), want error/%q", got.Verdict, got.Reason, err, scan.ReasonIO)
			}
		})
	}
	// And the engine still scans after all that.
	if got := scanBytes(t, e, randomBytes(3000)); got.Verdict != scan.Clean {
		t.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
	}
	// Without reuse nothing may stay open in the pool.
	b := e.backends[0]
	b.mu.Lock()
	idle := len(b.idle)
	b.mu.Unlock()
	if !e.reuse() && idle != 0 {
		t.Errorf("got %d idle connections without reuse, want 0", idle)
	}
}

func TestFailover(t *testing.T) {
	shared := testenv.ClamdAddr(t)
	dead := deadAddr(t)
	e := newEngine(t, Config{Addresses: []string{dead, shared, deadAddr(t)}})
	for i := range 20 {
		if got := scanBytes(t, e, randomBytes(1000)); got.Verdict != scan.Clean {
			t.Fatalf("scan %d: got %s (%s), want clean", i, got.Verdict, got.Detail)
		}
	}
	if got := scanBytes(t, e, testenv.EICAR); got.Verdict != scan.Infected {
		t.Fatalf("got %s (%s), want infected", got.Verdict, got.Detail)
	}
	for _, b := range e.backends {
		if b.addr.raw == shared {
			if b.down.Load() {
				t.Errorf("got %s backed off, want it up", shared)
			}
			continue
		}
		if !b.down.Load() {
			t.Errorf("got %s up, want it backed off", b.addr)
		}
	}
	// Backed-off addresses are not dialled on every scan: one failure
	// each, then passed over until the back-off ends.
	if d := e.dials.Load(); d > 3 {
		t.Errorf("got %d dials, want at most 3 (each dead address once, one session)", d)
	}
}

func TestLoadSpread(t *testing.T) {
	// Two daemons: concurrent scans must use both.
	a := testenv.StartClamd(t, testenv.ClamdOptions{})
	b := testenv.StartClamd(t, testenv.ClamdOptions{})
	e := newEngine(t, Config{Addresses: []string{a.TCP, b.Unix}})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if got := scanBytes(t, e, randomBytes(8000)); got.Verdict != scan.Clean {
					t.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
				}
			}
		})
	}
	wg.Wait()
	for _, be := range e.backends {
		be.mu.Lock()
		n := len(be.idle)
		be.mu.Unlock()
		if n == 0 {
			t.Errorf("got no pooled connection to %s, want scans spread over both addresses", be.addr)
		}
	}
}

func TestStaleSessionIsRetried(t *testing.T) {
	// clamd closes a session idle for ReadTimeout seconds.
	c := testenv.StartClamd(t, testenv.ClamdOptions{Conf: []string{"ReadTimeout 1"}})
	e := newEngine(t, Config{Addresses: []string{c.TCP}, IdleTimeout: time.Hour})
	if got := scanBytes(t, e, randomBytes(1000)); got.Verdict != scan.Clean {
		t.Fatalf("got %s (%s), want clean", got.Verdict, got.Detail)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := scanBytes(t, e, testenv.EICAR); got.Verdict != scan.Infected {
		t.Fatalf("got %s (%s), want infected", got.Verdict, got.Detail)
	}
	if r := e.retries.Load(); r != 1 {
		t.Errorf("got %d retries, want 1", r)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			e, err := New(Config{Name: "clamav", Addresses: []string{addr, deadAddr(t)}, IdleTimeout: m.idleTimeout}, nil)
			if err != nil {
				t.Fatal(err)
			}
			const scans = 400
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range scans / 8 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						res, err := e.Scan(ctx, spool.Bytes(randomBytes(2000)).Sample("s"))
						cancel()
						if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Clean {
							t.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
							return
						}
					}
				})
			}
			wg.Wait()
			e.Close()
			var after int
			for range 100 {
				if after = runtime.NumGoroutine(); after <= before {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			buf := make([]byte, 1<<20)
			t.Errorf("got %d goroutines after %d scans, want at most %d as before\n%s", after, scans, before, buf[:runtime.Stack(buf, true)])
		})
	}
}

var versionRE = regexp.MustCompile(`^ClamAV \d+\.\d+\.\d+(/\d+)?$`)

func TestVersionAndCommands(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	e := newEngine(t, Config{Addresses: []string{deadAddr(t), addr}})
	ctx := context.Background()
	v, err := e.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !versionRE.MatchString(v) {
		t.Errorf("got version %q, want ClamAV x.y.z[/db]", v)
	}
	dials := e.dials.Load()
	for range 10 {
		if v2, err := e.Version(ctx); err != nil || v2 != v {
			t.Fatalf("got %q, %v, want %q", v2, err, v)
		}
	}
	if d := e.dials.Load() - dials; d != 0 {
		t.Errorf("got %d dials for cached versions, want 0", d)
	}
	cmds, err := e.Commands(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"INSTREAM", "IDSESSION", "PING", "VERSION", "RELOAD"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("got commands %v, want %s among them", cmds, want)
		}
	}
	if err := e.Ping(ctx); err != nil {
		t.Errorf("got ping error %v with one healthy address, want nil", err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Errorf("got reload error %v, want nil (the dead address is passed over)", err)
	}
}

func TestTrimVersion(t *testing.T) {
	for in, want := range map[string]string{
		"ClamAV 1.4.6":       "ClamAV 1.4.6",
		"ClamAV 1.4.6/27480": "ClamAV 1.4.6/27480",
		"ClamAV 1.4.6/27480/Mon Nov 23 09:00:00 2026": "ClamAV 1.4.6/27480",
	} {
		if got := trimVersion(in); got != want {
			t.Errorf("trimVersion(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestDownEngine(t *testing.T) {
	e := newEngine(t, Config{Addresses: []string{deadAddr(t), deadAddr(t)}})
	ctx := context.Background()
	if err := e.Ping(ctx); err == nil {
		t.Error("got ping nil with every address down, want an error")
	}
	if v, err := e.Version(ctx); err == nil {
		t.Errorf("got version %q with every address down, want an error", v)
	}
	if _, err := e.Commands(ctx); err == nil {
		t.Error("got commands with every address down, want an error")
	}
	e.Close()
	res, err := e.Scan(ctx, spool.Bytes(nil).Sample("s"))
	if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Error || !errors.Is(err, ErrClosed) {
		t.Errorf("got %s (%v) after Close, want an error wrapping ErrClosed", got.Verdict, err)
	}
}

// TestSignatureFolderReload changes a real clamd's signature folder and
// checks that the version changes, after the settle time, and that clamd
// then detects with the new signature.
func TestSignatureFolderReload(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	e := newEngine(t, Config{
		Addresses:      []string{c.TCP},
		SignaturesDir:  c.SigDir,
		ReloadInterval: 10 * time.Millisecond,
		ReloadSettle:   300 * time.Millisecond,
	})
	ctx := context.Background()
	v1, err := e.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ClamAV [0-9.]+\+sigs:[0-9a-f]{12}$`).MatchString(v1) {
		t.Fatalf("got version %q, want ClamAV x.y.z+sigs:<12 hex>", v1)
	}
	sample := testenv.Deterministic("lazaret-new-signature", 5000)
	if got := scanBytes(t, e, sample); got.Verdict != scan.Clean {
		t.Fatalf("got %s (%s) before the new signature, want clean", got.Verdict, got.Detail)
	}

	sum := md5.Sum(sample)
	line := fmt.Sprintf("%s:%d:Lazaret.Test.New\n", hex.EncodeToString(sum[:]), len(sample))
	if err := os.WriteFile(filepath.Join(c.SigDir, "new.hdb"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	v2 := v1
	for time.Since(written) < 10*time.Second && v2 == v1 {
		time.Sleep(20 * time.Millisecond)
		if v2, err = e.Version(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v2 == v1 {
		t.Fatalf("got version %q unchanged after a new signature file, want a new digest", v2)
	}
	if d := time.Since(written); d < 300*time.Millisecond {
		t.Errorf("got the new version %v after the change, want it only after ReloadSettle (300ms)", d)
	}
	if strings.Split(v2, "+")[0] != strings.Split(v1, "+")[0] {
		t.Errorf("got clamd part %q, want %q unchanged", v2, v1)
	}
	// clamd loaded the folder: the new signature detects.
	want := testenv.Unofficial("Lazaret.Test.New")
	var got scan.Result
	for range 50 {
		if got = scanBytes(t, e, sample); got.Verdict == scan.Infected {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Verdict != scan.Infected || got.Findings[0].Signature != want {
		t.Fatalf("got %s %+v after reload, want infected by %s", got.Verdict, got.Findings, want)
	}

	// Touching a file without changing it changes nothing.
	now := time.Now().Add(time.Second)
	os.Chtimes(filepath.Join(c.SigDir, "new.hdb"), now, now)
	time.Sleep(20 * time.Millisecond)
	if v3, err := e.Version(ctx); err != nil || v3 != v2 {
		t.Errorf("got %q, %v after touching a file, want %q", v3, err, v2)
	}

	// An explicit Reload after removing it: back to the first digest.
	os.Remove(filepath.Join(c.SigDir, "new.hdb"))
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	if v4, err := e.Version(ctx); err != nil || v4 != v1 {
		t.Errorf("got %q, %v after removing the file and Reload, want %q", v4, err, v1)
	}
}

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hdb", "x")
	d1, err := digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	write("freshclam.dat", "ignored")
	write(".hidden.hdb", "ignored")
	if d, _ := digest(dir); d != d1 {
		t.Errorf("got %s after adding non-signature files, want %s", d, d1)
	}
	write("b.ndb", "")
	d2, _ := digest(dir)
	if d2 == d1 {
		t.Error("got the same digest after adding an empty signature file, want a new one")
	}
	write("a.hdb", "y")
	if d, _ := digest(dir); d == d2 || d == d1 {
		t.Error("got an old digest after changing a file's content, want a new one")
	}
	if _, err := digest(filepath.Join(dir, "missing")); err == nil {
		t.Error("got no error for a missing folder, want one")
	}
}

func TestClamdKilledWhileInUse(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	// Engines that hold pooled sessions to the daemon when it dies.
	engines := []*Engine{
		newEngine(t, Config{Addresses: []string{c.TCP}}),
		newEngine(t, Config{Addresses: []string{c.TCP}, IdleTimeout: -1}),
	}
	for _, e := range engines {
		if got := scanBytes(t, e, randomBytes(1000)); got.Verdict != scan.Clean {
			t.Fatalf("got %s (%s), want clean before the kill", got.Verdict, got.Detail)
		}
	}
	c.Kill()
	for i, e := range engines {
		for range 2 {
			res, err := e.Scan(context.Background(), spool.Bytes(randomBytes(1000)).Sample("s"))
			if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Error || !errors.Is(err, ErrNoAddress) {
				t.Errorf("engine %d: got %s (%v) after the kill, want an error wrapping ErrNoAddress", i, got.Verdict, err)
			}
		}
		if err := e.Ping(context.Background()); err == nil {
			t.Errorf("engine %d: got ping nil after the kill, want an error", i)
		}
	}
}
