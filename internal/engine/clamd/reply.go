package clamd

import (
	"errors"
	"strconv"
	"strings"

	"github.com/lazaret/lazaret/internal/scan"
)

// Sentinel errors, wrapped in the errors Scan and the commands return, for
// callers and tests that branch on what went wrong. Every one of them also
// carries a scan.Reason, so scan.Normalize never reads them as clean.
var (
	// ErrUnexpectedReply: a reply that is empty, cut off (no terminator)
	// or in no form clamd is known to send.
	ErrUnexpectedReply = errors.New("unexpected reply")
	// ErrReplyError: clamd answered "... ERROR".
	ErrReplyError = errors.New("error reply")
	// ErrNoAddress: no configured address accepted a connection.
	ErrNoAddress = errors.New("no address reachable")
)

// Reply forms of clamd's z protocol.
const (
	replyOK         = "OK"
	replyFound      = " FOUND"
	replyError      = " ERROR"
	replyTooLarge   = "INSTREAM size limit exceeded."
	limitsPrefix    = "Heuristics.Limits.Exceeded"
	encryptedPrefix = "Heuristics.Encrypted."
)

// ParseReply turns one clamd reply to zINSTREAM or zFILDES into a result.
// raw is the reply exactly as read, including the NUL terminator, without
// the "N: " prefix of an IDSESSION reply (see parseSessionReply). The
// subject is "stream" for INSTREAM and "fd[N]" for FILDES; the table
// below shows the first.
//
// It is the one place where a clamd answer becomes a verdict, so it fails
// closed: the result is Clean only when raw is exactly "stream: OK\x00"
// (or "fd[N]: OK\x00").
// Infected comes back as a Result; everything that is neither clean nor
// infected comes back as an error made with scan.Skipf or scan.Errorf, so
// that scan.Normalize yields the right verdict and reason:
//
//	stream: OK                             clean
//	stream: NAME FOUND                     infected, signature NAME
//	stream: Heuristics.Limits.Exceeded...  skipped, limits_exceeded
//	stream: Heuristics.Encrypted.* FOUND   skipped, encrypted
//	INSTREAM size limit exceeded. ERROR    skipped, too_large
//	anything else ending " ERROR"          error, engine_error (ErrReplyError)
//	empty, no terminator, anything else    error, engine_error (ErrUnexpectedReply)
func ParseReply(raw []byte) (scan.Result, error) {
	if len(raw) == 0 {
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: empty", ErrUnexpectedReply)
	}
	if raw[len(raw)-1] != 0 {
		// A reply without its terminator was cut off: whatever it says so
		// far ("stream: O") proves nothing.
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: cut off: %q", ErrUnexpectedReply, raw)
	}
	body := raw[:len(raw)-1]
	if !printable(body) {
		// NULs (two replies in one), newlines and control bytes are not
		// part of any single reply clamd sends.
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: %q", ErrUnexpectedReply, body)
	}
	s := string(body)
	rest, subject := cutSubject(s)
	switch {
	case subject && rest == replyOK:
		return scan.Result{Verdict: scan.Clean}, nil
	case s == replyTooLarge+replyError:
		return scan.Result{}, scan.Skipf(scan.ReasonTooLarge, "clamd: %s (StreamMaxLength)", s)
	case len(s) > len(replyError) && strings.HasSuffix(s, replyError):
		return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: %q", ErrReplyError, s)
	case subject && len(rest) > len(replyFound) && strings.HasSuffix(rest, replyFound):
		name := trimExtendedInfo(rest[:len(rest)-len(replyFound)])
		switch {
		case name == "":
			return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: %q", ErrUnexpectedReply, s)
		case strings.HasPrefix(name, limitsPrefix):
			// clamd stopped scanning at a limit (AlertExceedsMax): part of
			// the sample was never looked at.
			return scan.Result{}, scan.Skipf(scan.ReasonLimitsExceeded, "clamd: limits exceeded: %s", name)
		case strings.HasPrefix(name, encryptedPrefix):
			return scan.Result{}, scan.Skipf(scan.ReasonEncrypted, "clamd: encrypted content: %s", name)
		}
		return scan.Result{Verdict: scan.Infected, Findings: []scan.Finding{{Signature: name}}}, nil
	}
	return scan.Result{}, scan.Errorf(scan.ReasonEngineError, "clamd: %w: %q", ErrUnexpectedReply, s)
}

// cutSubject removes the subject of a scan reply, "stream: " (INSTREAM)
// or "fd[N]: " (FILDES, N being clamd's descriptor number), and reports
// whether there was one.
func cutSubject(s string) (rest string, ok bool) {
	if rest, ok := strings.CutPrefix(s, "stream: "); ok {
		return rest, true
	}
	rest, ok = strings.CutPrefix(s, "fd[")
	if !ok {
		return s, false
	}
	i := 0
	for i < len(rest) && i < 10 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || !strings.HasPrefix(rest[i:], "]: ") {
		return s, false
	}
	return rest[i+3:], true
}

// trimExtendedInfo removes the "(hash:size)" that clamd appends to names
// with ExtendedDetectionInfo, so the signature is the same either way.
func trimExtendedInfo(name string) string {
	if len(name) == 0 || name[len(name)-1] != ')' {
		return name
	}
	open := strings.LastIndexByte(name, '(')
	if open <= 0 {
		return name
	}
	hash, size, ok := strings.Cut(name[open+1:len(name)-1], ":")
	if !ok || hash == "" || size == "" || !isHex(hash) {
		return name
	}
	if _, err := strconv.ParseUint(size, 10, 64); err != nil {
		return name
	}
	return name[:open]
}

// parseSessionReply splits an IDSESSION reply "N: rest" into N and rest.
func parseSessionReply(raw []byte) (id uint64, rest []byte, ok bool) {
	i := 0
	for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
		i++
	}
	if i == 0 || i > 19 || len(raw) < i+2 || raw[i] != ':' || raw[i+1] != ' ' {
		return 0, nil, false
	}
	id, err := strconv.ParseUint(string(raw[:i]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return id, raw[i+2:], true
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
