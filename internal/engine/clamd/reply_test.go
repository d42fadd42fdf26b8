package clamd

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/lazaret/lazaret/internal/scan"
)

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		raw       string
		verdict   scan.Verdict
		reason    scan.Reason
		signature string
		sentinel  error
	}{
		{"clean", "stream: OK\x00", scan.Clean, "", "", nil},
		{"found", "stream: Eicar-Test-Signature FOUND\x00", scan.Infected, "", "Eicar-Test-Signature", nil},
		{"found unofficial", "stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00", scan.Infected, "", "Eicar-Test-Signature.UNOFFICIAL", nil},
		{"found extended info", "stream: Lazaret.Test.HSB(9f86d081884c7d65:4096) FOUND\x00", scan.Infected, "", "Lazaret.Test.HSB", nil},
		{"found parens not extended", "stream: Odd(name) FOUND\x00", scan.Infected, "", "Odd(name)", nil},
		{"found heuristic", "stream: Heuristics.Broken.Executable FOUND\x00", scan.Infected, "", "Heuristics.Broken.Executable", nil},
		{"limits max file size", "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\x00", scan.Skipped, scan.ReasonLimitsExceeded, "", nil},
		{"limits bare", "stream: Heuristics.Limits.Exceeded FOUND\x00", scan.Skipped, scan.ReasonLimitsExceeded, "", nil},
		{"encrypted zip", "stream: Heuristics.Encrypted.Zip FOUND\x00", scan.Skipped, scan.ReasonEncrypted, "", nil},
		{"encrypted pdf", "stream: Heuristics.Encrypted.PDF FOUND\x00", scan.Skipped, scan.ReasonEncrypted, "", nil},
		{"size limit", "INSTREAM size limit exceeded. ERROR\x00", scan.Skipped, scan.ReasonTooLarge, "", nil},
		{"stream error", "stream: Can't allocate memory ERROR\x00", scan.Error, scan.ReasonEngineError, "", ErrReplyError},
		{"other error", "Error processing command. ERROR\x00", scan.Error, scan.ReasonEngineError, "", ErrReplyError},
		{"ok then error", "stream: OK ERROR\x00", scan.Error, scan.ReasonEngineError, "", ErrReplyError},
		{"found then error", "stream: X FOUND ERROR\x00", scan.Error, scan.ReasonEngineError, "", ErrReplyError},
		{"empty", "", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"terminator only", "\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"ok without terminator", "stream: OK", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"cut off", "stream: O", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"found without terminator", "stream: X FOUND", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"newline terminator", "stream: OK\n", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"two replies", "stream: OK\x00stream: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"ok with trailing space", "stream: OK \x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"ok lowercase", "stream: ok\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"ok other name", "file: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"bare OK", "OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"found no name", "stream:  FOUND\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"session prefix left on", "1: stream: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"unknown command", "UNKNOWN COMMAND\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"read timed out", "COMMAND READ TIMED OUT\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"pong", "PONG\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"control byte", "stream: OK\r\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"newline inside", "stream: OK\nstream: X FOUND\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes clean", "fd[11]: OK\x00", scan.Clean, "", "", nil},
		{"fildes found", "fd[7]: Eicar-Test-Signature.UNOFFICIAL FOUND\x00", scan.Infected, "", "Eicar-Test-Signature.UNOFFICIAL", nil},
		{"fildes limits", "fd[7]: Heuristics.Limits.Exceeded.MaxFileSize FOUND\x00", scan.Skipped, scan.ReasonLimitsExceeded, "", nil},
		{"fildes error", "fd[7]: lstat() failed: No such file or directory. ERROR\x00", scan.Error, scan.ReasonEngineError, "", ErrReplyError},
		{"fildes no number", "fd[]: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes not a number", "fd[x]: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes unclosed", "fd[11: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes no space", "fd[11]:OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes number too long", "fd[12345678901]: OK\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
		{"fildes found no name", "fd[3]:  FOUND\x00", scan.Error, scan.ReasonEngineError, "", ErrUnexpectedReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseReply([]byte(tc.raw))
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("got error %v, want one wrapping %v", err, tc.sentinel)
			}
			got := scan.Normalize("clamav", res, err)
			if got.Verdict != tc.verdict || got.Reason != tc.reason {
				t.Fatalf("got %s/%q (%s), want %s/%q", got.Verdict, got.Reason, got.Detail, tc.verdict, tc.reason)
			}
			if tc.verdict == scan.Infected {
				if len(got.Findings) != 1 || got.Findings[0].Signature != tc.signature {
					t.Errorf("got findings %+v, want signature %q", got.Findings, tc.signature)
				}
			}
			if err != nil && !strings.HasPrefix(err.Error(), "clamd: ") {
				t.Errorf("got error %q, want it prefixed \"clamd: \"", err)
			}
		})
	}
}

func TestParseSessionReply(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		id   uint64
		rest string
		ok   bool
	}{
		{"1: stream: OK\x00", 1, "stream: OK\x00", true},
		{"42: INSTREAM size limit exceeded. ERROR\x00", 42, "INSTREAM size limit exceeded. ERROR\x00", true},
		{"1:stream: OK\x00", 0, "", false},
		{": stream: OK\x00", 0, "", false},
		{"stream: OK\x00", 0, "", false},
		{"COMMAND READ TIMED OUT\n", 0, "", false},
		{"", 0, "", false},
		{"1", 0, "", false},
		{"99999999999999999999: x", 0, "", false},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			id, rest, ok := parseSessionReply([]byte(tc.raw))
			if id != tc.id || string(rest) != tc.rest || ok != tc.ok {
				t.Errorf("got %d, %q, %v, want %d, %q, %v", id, rest, ok, tc.id, tc.rest, tc.ok)
			}
		})
	}
}

// FuzzParseReply checks the fail-closed rule on any input: the result is
// clean only for the exact OK reply, infected results name a signature,
// and everything else is an error that normalises to a non-clean verdict
// with a reason.
// fdOK is a clean reply to zFILDES.
var fdOK = regexp.MustCompile(`^fd\[[0-9]{1,10}\]: OK\x00$`)

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK\x00", "stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00",
		"INSTREAM size limit exceeded. ERROR\x00", "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\x00",
		"stream: X ERROR\x00", "stream: O", "",
		"fd[11]: OK\x00", "fd[7]: Eicar-Test-Signature.UNOFFICIAL FOUND\x00", "fd[]: OK\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := ParseReply(raw)
		got := scan.Normalize("clamav", res, err)
		if !got.Verdict.Valid() {
			t.Fatalf("got verdict %q for %q, want a valid one", got.Verdict, raw)
		}
		isOK := string(raw) == "stream: OK\x00" || fdOK.Match(raw)
		if (got.Verdict == scan.Clean) != isOK {
			t.Fatalf("got %s for %q, want clean only for the OK reply", got.Verdict, raw)
		}
		switch got.Verdict {
		case scan.Infected:
			if err != nil || len(res.Findings) != 1 || res.Findings[0].Signature == "" {
				t.Fatalf("got infected %+v, %v for %q, want one named finding and no error", res, err, raw)
			}
		case scan.Error, scan.Skipped:
			if err == nil || got.Reason == scan.ReasonNone {
				t.Fatalf("got %s with reason %q and error %v for %q, want an error with a reason", got.Verdict, got.Reason, err, raw)
			}
		}
	})
}
