package clamd

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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// Type is the engine type name in configurations.
const Type = "clamd"

// commandTimeout bounds PING, VERSION, VERSIONCOMMANDS and RELOAD when the
// caller's context allows longer: they are instant for a healthy clamd.
const commandTimeout = 10 * time.Second

// ErrClosed is returned by an Engine after Close.
var ErrClosed = errors.New("engine closed")

// Engine scans samples with clamd. It is safe for concurrent use.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	backends []*backend
	rr       atomic.Uint32
	bufs     sync.Pool // *[]byte of bufSize
	bufSize  int
	now      func() time.Time
	closed   atomic.Bool

	// vmu guards the version cache and the signature folder state.
	vmu       sync.Mutex
	version   string // clamd's VERSION, without the date
	versionAt time.Time
	dbTime    time.Time // the date VERSION gave, if any
	sigs      *sigState

	// Counters, for tests and benchmarks.
	dials   atomic.Int64
	retries atomic.Int64
	fdScans atomic.Int64 // scans sent as a descriptor (zFILDES)

	memfds fdPool
}

var (
	_ scan.Engine   = (*Engine)(nil)
	_ scan.Pinger   = (*Engine)(nil)
	_ scan.Reloader = (*Engine)(nil)
)

// New returns an Engine for cfg, or an error naming every invalid field.
// It does not contact clamd: the first Scan, Ping or Version does. A nil
// logger discards.
func New(cfg Config, logger *slog.Logger) (*Engine, error) {
	cfg = cfg.withDefaults()
	addrs, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg: cfg,
		log: logger.With("engine", cfg.Name),
		now: time.Now,
		// room for "zIDSESSION\0zINSTREAM\0", a chunk with its length
		// and the terminating zero-length chunk, so that a small sample
		// goes out in one write.
		bufSize: len(cmdSession) + len(cmdInstream) + 4 + cfg.ChunkSize + 4,
	}
	for _, a := range addrs {
		e.backends = append(e.backends, newBackend(a, cfg.MaxConns))
	}
	e.memfds.max = cfg.MaxConns * len(addrs)
	if cfg.SignaturesDir != "" {
		e.sigs = &sigState{dir: cfg.SignaturesDir}
	}
	return e, nil
}

// Name returns the configured name.
func (e *Engine) Name() string { return e.cfg.Name }

// Type returns "clamd".
func (e *Engine) Type() string { return Type }

// Close closes pooled connections. Scans in flight finish; later calls
// fail with ErrClosed.
func (e *Engine) Close() error {
	e.closed.Store(true)
	for _, b := range e.backends {
		b.close()
	}
	e.memfds.close()
	return nil
}

// Commands for the z protocol.
const (
	cmdSession  = "zIDSESSION\x00"
	cmdInstream = "zINSTREAM\x00"
	cmdFildes   = "zFILDES\x00"
)

// reuse reports whether connections are kept between scans.
func (e *Engine) reuse() bool { return e.cfg.IdleTimeout > 0 }

// candidates returns the addresses to try for one request, in order:
// those not backed off, least loaded first, starting from a rotating
// offset so that equal loads take turns. When every address is backed
// off, the one whose back-off ends first is still tried: an engine must
// notice a daemon that came back without a restart.
func (e *Engine) candidates() []*backend {
	if len(e.backends) == 1 {
		return e.backends
	}
	now := e.now()
	n := len(e.backends)
	start := int(e.rr.Add(1) % uint32(n))
	out := make([]*backend, 0, n)
	for i := range n {
		if b := e.backends[(start+i)%n]; b.available(now) {
			out = append(out, b)
		}
	}
	// Insertion sort by load: stable, and n is a handful.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].load.Load() < out[j-1].load.Load(); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	if len(out) == 0 {
		soonest := e.backends[0]
		for _, b := range e.backends[1:] {
			if b.retryAt().Before(soonest.retryAt()) {
				soonest = b
			}
		}
		out = append(out, soonest)
	}
	return out
}

// dial opens a connection to b and records the address's health.
func (e *Engine) dial(ctx context.Context, b *backend, session bool) (*conn, error) {
	e.dials.Add(1)
	d := net.Dialer{Timeout: e.cfg.ConnectTimeout}
	nc, err := d.DialContext(ctx, b.addr.network, b.addr.addr)
	if err != nil {
		if ctx.Err() == nil {
			// The caller's deadline running out says nothing about the
			// address.
			b.markDown(e.log, e.now(), err)
		}
		return nil, err
	}
	b.markUp(e.log)
	return newConn(nc, session), nil
}

// Scan streams the sample to clamd with zINSTREAM and returns its verdict.
// Failures come back as errors carrying a scan.Reason; none of them is
// ever a clean result.
func (e *Engine) Scan(ctx context.Context, s scan.Sample) (scan.Result, error) {
	if e.closed.Load() {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: instream: %w", ErrClosed)
	}
	if s.Body == nil {
		return scan.Result{}, scan.Errorf(scan.ReasonIO, "clamd: instream: sample %q has no body", s.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	var dialErrs []error
	for _, b := range e.candidates() {
		if err := b.acquire(ctx); err != nil {
			return scan.Result{}, opError(ctx, "instream", err)
		}
		res, err, dialErr := e.scanOn(ctx, b, s)
		b.release()
		if dialErr == nil {
			return res, err
		}
		if ctx.Err() != nil {
			return scan.Result{}, opError(ctx, "instream", dialErr)
		}
		dialErrs = append(dialErrs, fmt.Errorf("%s: %w", b.addr, dialErr))
	}
	return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: instream: %w: %w", ErrNoAddress, errors.Join(dialErrs...))
}

// scanOn scans on one address, holding one of its slots. dialErr is set
// when no connection could be made, so that the caller fails over.
func (e *Engine) scanOn(ctx context.Context, b *backend, s scan.Sample) (res scan.Result, err, dialErr error) {
	var c *conn
	if e.reuse() {
		c = b.takeIdle(e.now(), e.cfg.IdleTimeout)
	}
	reused := c != nil
	if c == nil {
		if c, dialErr = e.dial(ctx, b, e.reuse()); dialErr != nil {
			return scan.Result{}, nil, dialErr
		}
	}
	passed := e.passable(b, s)
	res, next, err := e.instream(ctx, c, s, reused, passed)
	if next == connNoFD {
		c.close()
		b.noFD.Store(true)
		e.log.Warn("clamd does not take file descriptors (zFILDES); streaming samples instead", "address", b.addr.raw)
		passed = nil
		if c, dialErr = e.dial(ctx, b, e.reuse()); dialErr != nil {
			return scan.Result{}, nil, dialErr
		}
		reused = false
		res, next, err = e.instream(ctx, c, s, false, nil)
	}
	if next == connStale {
		// A pooled session that clamd closed while it sat idle (after
		// its ReadTimeout, or a restart) fails before a reply to this
		// scan arrives. Nothing of this scan reached a scanner, so it is
		// safe to run it again, once, on a new connection.
		c.close()
		e.retries.Add(1)
		e.log.Debug("clamd stale connection, retrying", "address", b.addr.raw, "error", err)
		if c, dialErr = e.dial(ctx, b, e.reuse()); dialErr != nil {
			return scan.Result{}, nil, dialErr
		}
		res, next, err = e.instream(ctx, c, s, false, passed)
	}
	if next != connKeep || !b.putIdle(c, e.now()) {
		c.close()
	}
	return res, err, nil
}

// aLongTimeAgo is a deadline in the past, to unblock reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

// connState says what to do with a connection after a scan.
type connState int

const (
	connDiscard connState = iota // close it
	connKeep                     // pool it for the next scan
	// connStale: a reused connection failed before any reply to this
	// scan; retry the scan on a new connection.
	connStale
	// connNoFD: clamd does not know zFILDES; retry the scan streamed,
	// on a new connection.
	connNoFD
)

// passable returns the bytes of a sample to pass to clamd at b as a file
// descriptor, or nil to stream it: descriptors go over unix sockets only,
// and only for samples held in memory (a spooled file is streamed: clamd
// would apply MaxFileSize to it instead of StreamMaxLength, and with
// AlertExceedsMax off answers OK for what it did not read).
func (e *Engine) passable(b *backend, s scan.Sample) []byte {
	if !fdPassing || e.cfg.NoFDPass || b.addr.network != "unix" || b.noFD.Load() {
		return nil
	}
	m, ok := s.Body.(interface{ Bytes() []byte })
	if !ok {
		return nil
	}
	return m.Bytes()
}

// instream runs one zINSTREAM on c, or, when passed is not nil, a zFILDES
// of a file holding passed (the sample's bytes), and says what to do with
// c next.
func (e *Engine) instream(ctx context.Context, c *conn, s scan.Sample, reused bool, passed []byte) (scan.Result, connState, error) {
	var body io.ReadCloser
	var done bool // clamd is known to be done with this command's sample
	if passed == nil {
		var err error
		if body, err = s.Body.Open(); err != nil {
			// Nothing was sent: a session is still good for the next scan.
			next := connDiscard
			if c.session {
				next = connKeep
			}
			return scan.Result{}, next, scan.Errorf(scan.ReasonIO, "clamd: instream: open sample: %w", err)
		}
		defer body.Close()
	}

	deadline, _ := ctx.Deadline() // Scan always sets one
	c.nc.SetDeadline(deadline)
	// A cancelled context (not only an expired one) must unblock the
	// conversation. AfterFunc starts no goroutine unless ctx ends.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })

	var sent int64
	var readErr, writeErr error
	if passed != nil {
		var mf memfd
		mf, sent, readErr, writeErr = e.sendFD(c, passed)
		if mf.fd >= 0 {
			defer func() {
				// Only a clean answer to this very command says that
				// clamd is done with the file. After a FOUND it may still
				// read on (AllMatchScanning sends one line a signature),
				// and a rewrite for another sample would change what it
				// scans, so that file, like one clamd never answered
				// for, is closed rather than kept.
				if done {
					e.memfds.put(mf)
				} else {
					e.memfds.drop(mf)
				}
			}()
		}
	} else {
		sent, readErr, writeErr = e.send(c, body)
	}
	if readErr != nil {
		// clamd is waiting for the rest of the stream; the connection
		// cannot be used again.
		stop()
		return scan.Result{}, connDiscard, scan.Errorf(scan.ReasonIO, "clamd: instream: read sample: %w", readErr)
	}
	// Read the reply even after a failed write: clamd answers "INSTREAM
	// size limit exceeded. ERROR" and closes while we are still sending.
	line, rerr := c.r.ReadSlice(0)
	interrupted := !stop()
	if passed != nil && rerr == nil && bytes.HasSuffix(line, []byte("UNKNOWN COMMAND\x00")) {
		return scan.Result{}, connNoFD, nil
	}
	if reused && !interrupted && ctx.Err() == nil && !replyFor(line, c.nextID) {
		// Either nothing (EOF, reset) or leftovers such as clamd's
		// "COMMAND READ TIMED OUT\n" for an idle session.
		err := rerr
		if err == nil {
			err = writeErr
		}
		return scan.Result{}, connStale, err
	}
	if rerr != nil {
		switch {
		case errors.Is(rerr, bufio.ErrBufferFull):
			return scan.Result{}, connDiscard, scan.Errorf(scan.ReasonEngineError, "clamd: instream: %w: longer than %d bytes", ErrUnexpectedReply, maxReply)
		case ctx.Err() != nil || isTimeout(rerr):
			return scan.Result{}, connDiscard, opError(ctx, "instream", rerr)
		case len(line) == 0 && writeErr != nil:
			return scan.Result{}, connDiscard, scan.Errorf(scan.ReasonEngineError, "clamd: instream: write: %w", writeErr)
		case len(line) == 0:
			return scan.Result{}, connDiscard, scan.Errorf(scan.ReasonEngineError, "clamd: instream: %w: connection closed before the reply: %w", ErrUnexpectedReply, rerr)
		}
		// A reply without its terminator: ParseReply says it is cut off.
	}
	if c.session && rerr == nil {
		id, rest, ok := parseSessionReply(line)
		if !ok || id != c.nextID {
			return scan.Result{}, connDiscard, scan.Errorf(scan.ReasonEngineError, "clamd: instream: %w: not the reply to command %d: %q", ErrUnexpectedReply, c.nextID, line)
		}
		line = rest
		c.nextID++
	}
	res, err := ParseReply(line)
	done = rerr == nil && err == nil && res.Verdict == scan.Clean
	switch {
	case err != nil:
		// Not a reply clamd gives on a healthy session; after an ERROR
		// clamd may end it anyway.
		return res, connDiscard, err
	case writeErr != nil:
		// clamd answered before it had the whole sample. Infected stands
		// (something was found); anything else is not a verdict on the
		// whole sample.
		return res, connDiscard, scan.Errorf(scan.ReasonEngineError, "clamd: instream: write: %w", writeErr)
	case s.Size > 0 && sent != s.Size:
		return res, connDiscard, scan.Errorf(scan.ReasonIO, "clamd: instream: sample %q is %d bytes but its body gave %d", s.Name, s.Size, sent)
	}
	// Only a clean reply is known to be the last one for its command:
	// with AllMatchScanning clamd sends one FOUND line per signature.
	if c.session && !interrupted && res.Verdict == scan.Clean {
		return res, connKeep, nil
	}
	return res, connDiscard, nil
}

// replyFor reports whether line is (the start of) a reply to command id
// of a session.
func replyFor(line []byte, id uint64) bool {
	got, _, ok := parseSessionReply(line)
	return ok && got == id
}

// send writes zINSTREAM (and IDSESSION, the first time on a session) and
// the sample in chunks, then the zero-length chunk that ends the stream.
// The first chunk shares a write with the command, so a sample that fits
// in one chunk costs one write.
func (e *Engine) send(c *conn, body io.Reader) (sent int64, readErr, writeErr error) {
	bp := e.getBuf()
	defer e.bufs.Put(bp)
	buf := *bp
	n := 0
	if c.session && !c.started {
		n += copy(buf, cmdSession)
		c.started = true
	}
	n += copy(buf[n:], cmdInstream)
	for {
		m, err := io.ReadFull(body, buf[n+4:n+4+e.cfg.ChunkSize])
		if m > 0 {
			binary.BigEndian.PutUint32(buf[n:], uint32(m))
			n += 4 + m
			sent += int64(m)
		}
		end := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !end {
			return sent, err, nil
		}
		if end {
			n += copy(buf[n:], []byte{0, 0, 0, 0})
		}
		if _, err := c.nc.Write(buf[:n]); err != nil {
			return sent, nil, err
		}
		if end {
			return sent, nil, nil
		}
		n = 0
	}
}

// sendFD writes zFILDES (and IDSESSION, the first time on a session),
// then one byte carrying a descriptor of an in-memory file holding data:
// clamd reads the command, then expects the descriptor in a message of
// its own. It returns the file (fd -1 if none was made), which the
// caller gives back to e.memfds with put or drop. readErr
// reports a file that could not be made (nothing was sent); writeErr a
// failed write.
func (e *Engine) sendFD(c *conn, data []byte) (mf memfd, sent int64, readErr, writeErr error) {
	uc, ok := c.nc.(*net.UnixConn)
	if !ok {
		return memfd{fd: -1}, 0, fmt.Errorf("zFILDES needs a unix socket, not %T", c.nc), nil
	}
	mf, err := e.memfds.get(data)
	if err != nil {
		return mf, 0, err, nil
	}
	cmd := cmdFildes
	if c.session && !c.started {
		cmd = cmdSession + cmdFildes
		c.started = true
	}
	if _, err := io.WriteString(uc, cmd); err != nil {
		return mf, 0, nil, err
	}
	if _, _, err := uc.WriteMsgUnix([]byte{0}, rights(mf.fd), nil); err != nil {
		return mf, 0, nil, err
	}
	e.fdScans.Add(1)
	return mf, int64(len(data)), nil, nil
}

func (e *Engine) getBuf() *[]byte {
	if bp, ok := e.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, e.bufSize)
	return &b
}

// command sends one z command on a new connection and returns the reply
// without its terminator. Commands other than scans are rare, so they do
// not take pool slots and never wait behind scans.
func (e *Engine) command(ctx context.Context, b *backend, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	op := strings.ToLower(cmd)
	c, err := e.dial(ctx, b, false)
	if err != nil {
		return "", dialError(ctx, op, b, err)
	}
	defer c.close()
	deadline, _ := ctx.Deadline()
	c.nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	if _, err := c.nc.Write([]byte("z" + cmd + "\x00")); err != nil {
		return "", opError(ctx, op, fmt.Errorf("%s: write: %w", b.addr, err))
	}
	line, err := c.r.ReadSlice(0)
	if err != nil {
		if len(line) > 0 && !isTimeout(err) {
			return "", scan.Errorf(scan.ReasonEngineError, "clamd: %s: %s: %w: cut off: %q", op, b.addr, ErrUnexpectedReply, line)
		}
		return "", opError(ctx, op, fmt.Errorf("%s: read: %w", b.addr, err))
	}
	reply := string(line[:len(line)-1])
	if reply == "" || !printable([]byte(reply)) {
		return "", scan.Errorf(scan.ReasonEngineError, "clamd: %s: %s: %w: %q", op, b.addr, ErrUnexpectedReply, reply)
	}
	if strings.HasSuffix(reply, replyError) || reply == "UNKNOWN COMMAND" {
		return "", scan.Errorf(scan.ReasonEngineError, "clamd: %s: %s: %w: %q", op, b.addr, ErrReplyError, reply)
	}
	return reply, nil
}

// Ping sends PING to every address. It succeeds when at least one answers
// PONG, because the engine can then still scan; addresses that fail are
// backed off and logged.
func (e *Engine) Ping(ctx context.Context) error {
	var errs []error
	for _, b := range e.backends {
		reply, err := e.command(ctx, b, "PING")
		if err == nil && reply != "PONG" {
			err = scan.Errorf(scan.ReasonEngineError, "clamd: ping: %s: %w: %q", b.addr, ErrUnexpectedReply, reply)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return nil
	}
	return errors.Join(errs...)
}

// Commands returns the commands clamd says it supports (VERSIONCOMMANDS),
// from the first address that answers.
func (e *Engine) Commands(ctx context.Context) ([]string, error) {
	reply, err := e.first(ctx, "VERSIONCOMMANDS")
	if err != nil {
		return nil, err
	}
	_, list, ok := strings.Cut(reply, "COMMANDS:")
	if !ok {
		return nil, scan.Errorf(scan.ReasonEngineError, "clamd: versioncommands: %w: %q", ErrUnexpectedReply, reply)
	}
	return strings.Fields(list), nil
}

// first sends a command to the candidates in turn and returns the first
// reply.
func (e *Engine) first(ctx context.Context, cmd string) (string, error) {
	var errs []error
	for _, b := range e.candidates() {
		reply, err := e.command(ctx, b, cmd)
		if err == nil {
			return reply, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.Join(errs...)
}

// dialError wraps a failed dial for a command.
func dialError(ctx context.Context, op string, b *backend, err error) error {
	if ctx.Err() != nil {
		return opError(ctx, op, fmt.Errorf("%s: %w", b.addr, err))
	}
	return scan.Errorf(scan.ReasonEngineError, "clamd: %s: %w: %s: %w", op, ErrNoAddress, b.addr, err)
}

// opError wraps a failure of op with the reason it must be reported with:
// timeout when a deadline ran out, engine_error otherwise.
func opError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up; the deadline error from the unblocked
		// read would hide that.
		return scan.Errorf(scan.ReasonEngineError, "clamd: %s: %w", op, context.Canceled)
	case ctx.Err() != nil || isTimeout(err):
		return scan.Errorf(scan.ReasonTimeout, "clamd: %s: %w", op, err)
	}
	return scan.Errorf(scan.ReasonEngineError, "clamd: %s: %w", op, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isRefused reports whether nothing listens at the address: a daemon that
// is down, as opposed to one that misbehaves.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
