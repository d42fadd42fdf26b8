package clamd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger { return testenv.Logger(t, slog.LevelDebug) }

// newEngine returns an engine closed at cleanup; cfg.Name defaults to
// "clamav".
func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "clamav"
	}
	e, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// scanBytes scans data and returns the normalised result, as the
// pipeline would see it.
func scanBytes(t testing.TB, e *Engine, data []byte) scan.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := e.Scan(ctx, spool.Bytes(data).Sample("sample"))
	return scan.Normalize(e.Name(), res, err)
}

// deadAddr returns a TCP address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

// fakeClamd is a tiny stand-in for clamd that speaks enough of the z
// protocol (IDSESSION, INSTREAM, other commands) to answer with canned,
// broken replies. The behaviour tests use a real clamd; this one covers
// failures a real clamd cannot be made to produce on demand.
type fakeClamd struct {
	addr string
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open []net.Conn
}

// fakeHandler answers one command. id is the command's number in a
// session (0 outside one). It returns the raw bytes to write; hangup
// closes the connection afterwards; wait blocks without answering until
// the client goes.
type fakeHandler func(cmd string, id int) (reply string, hangup, wait bool)

func startFake(t testing.TB, h fakeHandler) *fakeClamd {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, l, "tcp://"+l.Addr().String(), h)
}

// startFakeUnix is startFake on a unix socket.
func startFakeUnix(t testing.TB, h fakeHandler) *fakeClamd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clamd.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, l, "unix://"+path, h)
}

func serveFake(t testing.TB, l net.Listener, addr string, h fakeHandler) *fakeClamd {
	f := &fakeClamd{addr: addr, l: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.open = append(f.open, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				f.serve(c, h)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for _, c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeClamd) serve(c net.Conn, h fakeHandler) {
	r := bufio.NewReader(c)
	session, id := false, 0
	for {
		cmd, err := r.ReadString(0)
		if err != nil {
			return
		}
		cmd = strings.TrimSuffix(strings.TrimPrefix(cmd, "z"), "\x00")
		if cmd == "IDSESSION" {
			session = true
			continue
		}
		if cmd == "INSTREAM" {
			if err := drainStream(r); err != nil {
				return
			}
		}
		if cmd == "FILDES" {
			// The byte that carried the descriptor; reading it without
			// a control buffer makes the kernel close the descriptor.
			if _, err := r.ReadByte(); err != nil {
				return
			}
		}
		if session {
			id++
		}
		reply, hangup, wait := h(cmd, id)
		if wait {
			io.Copy(io.Discard, r) // until the client closes
			return
		}
		if session && reply != "" && !strings.HasPrefix(reply, "!") {
			reply = strconv.Itoa(id) + ": " + reply
		}
		c.Write([]byte(strings.TrimPrefix(reply, "!")))
		if hangup || !session {
			return
		}
	}
}

func drainStream(r *bufio.Reader) error {
	var n [4]byte
	for {
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return err
		}
		size := binary.BigEndian.Uint32(n[:])
		if size == 0 {
			return nil
		}
		if _, err := io.CopyN(io.Discard, r, int64(size)); err != nil {
			return err
		}
	}
}

// body is a scan.Body for failure tests.
type body struct {
	data    []byte
	openErr error
	readErr error // returned after data
}

func (b body) Open() (io.ReadCloser, error) {
	if b.openErr != nil {
		return nil, b.openErr
	}
	var r io.Reader = strings.NewReader(string(b.data))
	if b.readErr != nil {
		r = io.MultiReader(r, errReader{b.readErr})
	}
	return io.NopCloser(r), nil
}

func (b body) Path() (string, error) { return "", errors.New("no path") }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
