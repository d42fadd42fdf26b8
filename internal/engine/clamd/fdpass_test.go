//go:build linux

package clamd

import (
	"bytes"
	"context"
	"fmt"
	"sync"
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
			// One scan at a time: one in-memory file, rewritten.
			if made := e.memfds.made; made != 1 {
				t.Errorf("in-memory files made: got %d, want 1 reused", made)
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
	// clamd never answered for the file it was offered: it is closed,
	// not kept for another sample.
	if n := len(e.memfds.free); n != 0 {
		t.Errorf("%d in-memory files kept after an unanswered command, want 0", n)
	}
}

// TestScanFDPassConcurrent: in-memory files are reused across scans, so
// a file rewritten too early would give one sample another's verdict.
// Many scans at once, infected and clean mixed, must each get their own.
func TestScanFDPassConcurrent(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	e := newEngine(t, Config{Addresses: []string{c.Unix}, MaxConns: 4})
	var wg sync.WaitGroup
	errs := make(chan string, 8*40)
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				data, want := randomBytes(4096+i*64), scan.Clean
				if (w+i)%3 == 0 {
					data, want = testenv.EICAR, scan.Infected
				}
				if got := scanBytes(t, e, data); got.Verdict != want {
					errs <- fmt.Sprintf("worker %d scan %d: got %s (%s), want %s", w, i, got.Verdict, got.Detail, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if made, n := e.memfds.made, e.fdScans.Load(); made > 4+1 || n != 8*40 {
		t.Errorf("made %d in-memory files for %d scans; want at most one per connection", made, n)
	}
}
