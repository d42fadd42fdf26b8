package builtin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

func newEngine(t *testing.T, cfg Config) (*Engine, *testenv.Buffer) {
	t.Helper()
	logs := new(testenv.Buffer)
	e, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e, logs
}

func scanBytes(t *testing.T, e *Engine, data []byte) scan.Result {
	t.Helper()
	res, err := e.Scan(context.Background(), spool.Bytes(data).Sample("sample"))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return res
}

func signatures(r scan.Result) []string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, f.Signature)
	}
	return s
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	if err := testenv.WriteSignatures(dir); err != nil {
		t.Fatal(err)
	}
	noFolder, _ := newEngine(t, Config{Name: "b"})
	withFolder, _ := newEngine(t, Config{Name: "b", SignaturesDir: dir})
	for _, tc := range []struct {
		name   string
		e      *Engine
		data   []byte
		want   scan.Verdict
		wantSi []string
	}{
		{"eicar, no folder", noFolder, testenv.EICAR, scan.Infected, []string{EICARSignature}},
		{"eicar with newline", noFolder, append(slices.Clone(testenv.EICAR), "\r\n"...), scan.Infected, []string{EICARSignature}},
		{"eicar not at start", noFolder, append([]byte("x"), testenv.EICAR...), scan.Clean, nil},
		{"hsb sample, no folder", noFolder, testenv.HSBSample(), scan.Clean, nil},
		{"clean, no folder", noFolder, testenv.Deterministic("clean", 10000), scan.Clean, nil},
		{"empty", noFolder, nil, scan.Clean, nil},
		// With the folder, the names are clamd's for the same files.
		{"eicar", withFolder, testenv.EICAR, scan.Infected, []string{testenv.Unofficial(testenv.EICARSignature)}},
		{"hsb", withFolder, testenv.HSBSample(), scan.Infected, []string{testenv.Unofficial(testenv.HSBSignature)}},
		{"ndb", withFolder, testenv.NDBSample(), scan.Infected, []string{testenv.Unofficial(testenv.NDBSignature)}},
		{"clean", withFolder, testenv.Deterministic("clean", 10000), scan.Clean, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := scanBytes(t, tc.e, tc.data)
			if res.Verdict != tc.want || !slices.Equal(signatures(res), tc.wantSi) {
				t.Errorf("got %s %v, want %s %v", res.Verdict, signatures(res), tc.want, tc.wantSi)
			}
		})
	}
	if noFolder.Type() != "builtin" || noFolder.Name() != "b" {
		t.Errorf("got type %q name %q", noFolder.Type(), noFolder.Name())
	}
}

// TestAgreesWithClamd scans the test samples with clamd loaded with the
// same signatures and with the builtin engine: the answers must agree.
func TestAgreesWithClamd(t *testing.T) {
	addr := testenv.ClamdAddr(t)
	dir := t.TempDir()
	if err := testenv.WriteSignatures(dir); err != nil {
		t.Fatal(err)
	}
	e, _ := newEngine(t, Config{SignaturesDir: dir})
	for name, data := range map[string][]byte{
		"eicar": testenv.EICAR,
		"hsb":   testenv.HSBSample(),
		"ndb":   testenv.NDBSample(),
		"clean": testenv.Deterministic("agree-clean", 20000),
	} {
		t.Run(name, func(t *testing.T) {
			want := instream(t, addr, data)
			got := "stream: OK"
			if res := scanBytes(t, e, data); res.Verdict == scan.Infected {
				got = "stream: " + res.Findings[0].Signature + " FOUND"
			}
			if got != want {
				t.Errorf("builtin: %q, clamd: %q", got, want)
			}
		})
	}
}

// instream asks clamd about data, deliberately simply.
func instream(t *testing.T, addr string, data []byte) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	conn.Write(append(append(append([]byte("zINSTREAM\x00"), n[:]...), data...), 0, 0, 0, 0))
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(reply, "\x00")
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	if err := testenv.WriteSignatures(dir); err != nil {
		t.Fatal(err)
	}
	e, logs := newEngine(t, Config{SignaturesDir: dir, ReloadInterval: time.Nanosecond})
	ctx := context.Background()
	v1, _ := e.Version(ctx)
	if !strings.HasPrefix(v1, "builtin/") || len(v1) != len("builtin/")+12 {
		t.Fatalf("version %q, want builtin/ and 12 hex digits", v1)
	}
	data := []byte("....a brand new marker....")
	if res := scanBytes(t, e, data); res.Verdict != scan.Clean {
		t.Fatalf("before the edit: got %s, want clean", res.Verdict)
	}
	f := filepath.Join(dir, "lazaret-test.ndb")
	old, _ := os.ReadFile(f)
	edited := string(old) + "New.Marker:0:*:" + fmt.Sprintf("%x", "brand new marker") + "\n"
	if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	// A scan notices the change by itself (the interval is tiny).
	res := scanBytes(t, e, data)
	if want := []string{"New.Marker.UNOFFICIAL"}; !slices.Equal(signatures(res), want) {
		t.Errorf("after the edit: got %s %v, want %v\nlogs:\n%s", res.Verdict, signatures(res), want, logs)
	}
	v2, _ := e.Version(ctx)
	if v2 == v1 {
		t.Errorf("version did not change: %q", v2)
	}
	if !strings.Contains(logs.String(), "signatures reloaded") {
		t.Errorf("no reload logged:\n%s", logs)
	}
}

func TestVersion(t *testing.T) {
	ctx := context.Background()
	a, _ := newEngine(t, Config{})
	b, _ := newEngine(t, Config{})
	va, _ := a.Version(ctx)
	vb, _ := b.Version(ctx)
	if va != vb {
		t.Errorf("same signatures, different versions: %q, %q", va, vb)
	}
	dir := t.TempDir()
	testenv.WriteSignatures(dir)
	c, _ := newEngine(t, Config{SignaturesDir: dir})
	if vc, _ := c.Version(ctx); vc == va {
		t.Errorf("a folder of signatures does not change the version: %q", vc)
	}
}

func TestMalformedLine(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteSignatures(dir)
	bad := "Bad.Odd:0:*:6c617a617\nGood.Marker:0:*:" + fmt.Sprintf("%x", "good marker") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "extra.ndb"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	e, logs := newEngine(t, Config{SignaturesDir: dir})
	if !strings.Contains(logs.String(), "extra.ndb:1: hex signature: odd length") {
		t.Errorf("malformed line not logged with file:line:\n%s", logs)
	}
	for data, want := range map[string]string{
		"x good marker x":           "Good.Marker.UNOFFICIAL",
		string(testenv.NDBSample()): testenv.Unofficial(testenv.NDBSignature),
	} {
		if got := signatures(scanBytes(t, e, []byte(data))); !slices.Equal(got, []string{want}) {
			t.Errorf("got %v, want %s", got, want)
		}
	}
}

func TestBadFolder(t *testing.T) {
	if _, err := New(Config{SignaturesDir: filepath.Join(t.TempDir(), "missing")}, nil); err == nil {
		t.Error("missing folder: got no error")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.hdb"), []byte("nonsense\n"), 0o644)
	if _, err := New(Config{SignaturesDir: dir}, nil); err == nil {
		t.Error("folder of only malformed lines: got no error")
	}
	// An empty folder is fine: EICAR only.
	e, err := New(Config{SignaturesDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := signatures(scanBytes(t, e, testenv.EICAR)); !slices.Equal(got, []string{EICARSignature}) {
		t.Errorf("got %v", got)
	}
}

func TestReloadKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteSignatures(dir)
	e, logs := newEngine(t, Config{SignaturesDir: dir, ReloadInterval: -1})
	ctx := context.Background()
	v1, _ := e.Version(ctx)
	for _, name := range []string{"lazaret-test.hdb", "lazaret-test.hsb", "lazaret-test.ndb"} {
		os.WriteFile(filepath.Join(dir, name), []byte("garbage\n"), 0o644)
	}
	if err := e.Reload(ctx); err == nil {
		t.Fatal("Reload of a broken folder: got no error")
	}
	if v2, _ := e.Version(ctx); v2 != v1 {
		t.Errorf("version changed to %q after a failed reload", v2)
	}
	if got := signatures(scanBytes(t, e, testenv.NDBSample())); len(got) != 1 {
		t.Errorf("old signatures lost: got %v\n%s", got, logs)
	}
	// Lazily too: the engine logs and keeps going.
	e.cfg.ReloadInterval = time.Nanosecond
	os.RemoveAll(dir)
	if got := signatures(scanBytes(t, e, testenv.NDBSample())); len(got) != 1 {
		t.Errorf("old signatures lost after the folder went: got %v", got)
	}
	if !strings.Contains(logs.String(), "signature folder check failed") {
		t.Errorf("failed check not logged:\n%s", logs)
	}
}

// failingBody is a scan.Body whose reader fails after some bytes.
type failingBody struct {
	data []byte
	err  error
}

func (b failingBody) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(bytes.NewReader(b.data), errReader{b.err})), nil
}

func (b failingBody) Path() (string, error) { return "", errors.New("no path") }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestFailuresAreNotClean(t *testing.T) {
	e, _ := newEngine(t, Config{})
	boom := errors.New("disk on fire")
	clean := testenv.Deterministic("x", 100000)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		sample scan.Sample
		reason scan.Reason
	}{
		{"read error midway", context.Background(), scan.Sample{Size: 200000, Body: failingBody{clean, boom}}, scan.ReasonIO},
		{"short body", context.Background(), scan.Sample{Size: 200000, Body: spool.Bytes(clean)}, scan.ReasonIO},
		{"long body", context.Background(), scan.Sample{Size: 10, Body: spool.Bytes(clean)}, scan.ReasonIO},
		{"cancelled", cancelled, spool.Bytes(clean).Sample("c"), scan.ReasonTimeout},
		{"no body", context.Background(), scan.Sample{Size: 1}, scan.ReasonEngineError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Scan(tc.ctx, tc.sample)
			if err == nil {
				t.Fatalf("got %s and no error", res.Verdict)
			}
			n := scan.Normalize("b", res, err)
			if n.Verdict != scan.Error || n.Reason != tc.reason {
				t.Errorf("got %s %s (%v), want error %s", n.Verdict, n.Reason, err, tc.reason)
			}
		})
	}
	// Found before the failure: still infected.
	res, err := e.Scan(context.Background(), scan.Sample{Size: 1000, Body: failingBody{testenv.EICAR, boom}})
	if n := scan.Normalize("b", res, err); n.Verdict != scan.Infected {
		t.Errorf("EICAR then a read error: got %s, want infected", n.Verdict)
	}
}

func TestDeadline(t *testing.T) {
	e, _ := newEngine(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := e.Scan(ctx, spool.Bytes(make([]byte, 1<<20)).Sample("x"))
	if v, r := scan.Classify(err); v != scan.Error || r != scan.ReasonTimeout {
		t.Errorf("got %s %s, want error timeout", v, r)
	}
}

func TestConcurrentScansAndReloads(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteSignatures(dir)
	e, _ := newEngine(t, Config{SignaturesDir: dir, ReloadInterval: time.Nanosecond})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				if res := scanBytes(t, e, testenv.NDBSample()); res.Verdict != scan.Infected {
					t.Errorf("scan %d/%d: got %s", i, j, res.Verdict)
				}
			}
		})
	}
	wg.Go(func() {
		for j := range 20 {
			os.WriteFile(filepath.Join(dir, "extra.hdb"), fmt.Appendf(nil, "%032x:%d:X%d\n", j, j, j), 0o644)
			e.Reload(context.Background())
		}
	})
	wg.Wait()
}
