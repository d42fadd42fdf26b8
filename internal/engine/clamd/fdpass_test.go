//go:build linux

package clamd

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
	"golang.org/x/sys/unix"
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
			// One scan at a time: one in-memory file, rewritten after
			// each clean answer; after a FOUND clamd may read on, so
			// each infected sample's file is closed and a new one made.
			infected := 0
			for _, s := range samples {
				if s.want == scan.Infected {
					infected += 2
				}
			}
			if made := e.memfds.made; made != 1+infected {
				t.Errorf("in-memory files made: got %d, want %d (1 reused, and one per infected scan)", made, 1+infected)
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
	var infected atomic.Int64
	errs := make(chan string, 8*40)
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				data, want := randomBytes(4096+i*64), scan.Clean
				if (w+i)%3 == 0 {
					data, want = testenv.EICAR, scan.Infected
					infected.Add(1)
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
	if made, n, inf := e.memfds.made, e.fdScans.Load(), int(infected.Load()); made > 4+1+inf || n != 8*40 {
		t.Errorf("made %d in-memory files for %d scans, %d infected; want at most one per connection and one per infected scan", made, n, inf)
	}
}

// TestScanFDPassFoundNotKept: only a clean answer says clamd is done with
// a file. After a FOUND it may still read it (with AllMatchScanning it
// answers one line per signature), so that file must not go back to the
// pool to be rewritten with the next sample under clamd's eyes.
func TestScanFDPassFoundNotKept(t *testing.T) {
	c := testenv.StartClamd(t, testenv.ClamdOptions{})
	e := newEngine(t, Config{Addresses: []string{c.Unix}})
	for _, s := range []struct {
		name string
		data []byte
		want scan.Verdict
		kept int
	}{
		{"clean", randomBytes(1000), scan.Clean, 1},
		{"infected", testenv.EICAR, scan.Infected, 0},
		{"clean again", randomBytes(500), scan.Clean, 1},
	} {
		if got := scanBytes(t, e, s.data); got.Verdict != s.want {
			t.Fatalf("%s: got %s (%s), want %s", s.name, got.Verdict, got.Detail, s.want)
		}
		if n := len(e.memfds.free); n != s.kept {
			t.Errorf("after the %s scan: %d in-memory files kept, want %d", s.name, n, s.kept)
		}
	}
}

// TestFillFD: a kept file rewritten with a shorter, an equal and a longer
// sample holds exactly each one.
func TestFillFD(t *testing.T) {
	var p fdPool
	p.max = 1
	defer p.close()
	for _, n := range []int{100, 10, 10, 50, 0, 4096} {
		data := randomBytes(n)
		f, err := p.get(data)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n+1)
		m, err := unix.Pread(f.fd, got, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:m], data) {
			t.Errorf("after writing %d bytes the file holds %d bytes, not the same", n, m)
		}
		p.put(f)
	}
	if p.made != 1 {
		t.Errorf("files made: %d, want 1", p.made)
	}
}
