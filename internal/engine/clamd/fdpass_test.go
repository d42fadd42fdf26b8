//go:build linux

package clamd

import (
	"bytes"
	"context"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

// TestScanFDPass: on a unix socket, samples held in memory go to a real
// clamd as descriptors (zFILDES), with the same verdicts as streamed
// ones, on pooled sessions and on one connection per scan; spooled files,
// TCP addresses and NoFDPass stream them.
func TestScanFDPass(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	samples := []struct {
		name string
		data []byte
		want scan.Verdict
	}{
		{"eicar", testenv.EICAR, scan.Infected},
		{"random", randomBytes(16 << 10), scan.Clean},
		{"empty", []byte{}, scan.Clean},
		{"eicar in a zip", zipOf(t, "eicar.com", testenv.EICAR, 0), scan.Infected},
		{"a megabyte", randomBytes(1 << 20), scan.Clean},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEngine(t, Config{Addresses: []string{c.Unix}, IdleTimeout: m.idleTimeout})
			for round := range 2 {
				for _, s := range samples {
					if got := scanBytes(t, e, s.data); got.Verdict != s.want {
						t.Fatalf("round %d, %s: got %s (%s), want %s", round, s.name, got.Verdict, got.Detail, s.want)
					}
				}
			}
			if got, want := e.fdScans.Load(), int64(2*len(samples)); got != want {
				t.Errorf("scans passed as descriptors: got %d, want %d", got, want)
			}
		})
	}

	streamed := func(name string, e *Engine, body *spool.Body) {
		t.Helper()
		res, err := e.Scan(context.Background(), body.Sample(name))
		if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Infected {
			t.Errorf("%s: got %s (%s), want infected", name, got.Verdict, got.Detail)
		}
		if n := e.fdScans.Load(); n != 0 {
			t.Errorf("%s: %d scans passed as descriptors, want none", name, n)
		}
	}
	file, err := spool.New(context.Background(), bytes.NewReader(testenv.EICAR), spool.Options{MemLimit: -1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	streamed("spooled file", newEngine(t, Config{Addresses: []string{c.Unix}}), file)
	streamed("tcp", newEngine(t, Config{Addresses: []string{c.TCP}}), spool.Bytes(testenv.EICAR))
	streamed("no fdpass", newEngine(t, Config{Addresses: []string{c.Unix}, NoFDPass: true}), spool.Bytes(testenv.EICAR))
}

// TestScanFDPassUnknown: a clamd that answers zFILDES with UNKNOWN
// COMMAND gets the same scan streamed, and every later one too.
func TestScanFDPassUnknown(t *testing.T) {
	var fildes, instream int
	f := startFakeUnix(t, func(cmd string, id int) (string, bool, bool) {
		switch cmd {
		case "FILDES":
			fildes++
			return "!UNKNOWN COMMAND\x00", true, false
		case "INSTREAM":
			instream++
			return "stream: OK\x00", false, false
		}
		return "!UNKNOWN COMMAND\x00", true, false
	})
	e := newEngine(t, Config{Addresses: []string{f.addr}})
	for i := range 3 {
		if got := scanBytes(t, e, randomBytes(100)); got.Verdict != scan.Clean {
			t.Fatalf("scan %d: got %s (%s), want clean", i, got.Verdict, got.Detail)
		}
	}
	if fildes != 1 || instream != 3 {
		t.Errorf("got %d FILDES and %d INSTREAM commands, want 1 and 3", fildes, instream)
	}
}
