package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Verdict is the outcome of scanning a sample.
type Verdict string

// The verdicts. The zero value is not a verdict: code that meets it treats it
// as Error.
const (
	Clean    Verdict = "clean"
	Infected Verdict = "infected"
	Error    Verdict = "error"
	Skipped  Verdict = "skipped"
)

// Valid reports whether v is one of the four verdicts.
func (v Verdict) Valid() bool {
	switch v {
	case Clean, Infected, Error, Skipped:
		return true
	}
	return false
}

// rank orders verdicts for Combine: the higher rank wins. Infected wins over
// error (SPEC: "Infected wins over error when engines disagree"), error over
// skipped, and anything over clean. Unknown verdicts rank as error.
func (v Verdict) rank() int {
	switch v {
	case Infected:
		return 4
	case Skipped:
		return 2
	case Clean:
		return 1
	case Error:
		return 3
	}
	return 3
}

// Reason says why a verdict is not clean or infected.
type Reason string

// The reasons. ReasonIO is lazaret's addition to SPEC's list: the sample's
// own bytes could not be read to the end (a cut-off upload, a failing
// disk), which is neither an engine's fault nor a size limit.
const (
	ReasonNone           Reason = ""
	ReasonTooLarge       Reason = "too_large"
	ReasonEncrypted      Reason = "encrypted"
	ReasonLimitsExceeded Reason = "limits_exceeded"
	ReasonTimeout        Reason = "timeout"
	ReasonEngineError    Reason = "engine_error"
	ReasonNotFound       Reason = "not_found"
	ReasonAccessDenied   Reason = "access_denied"
	ReasonUnsupported    Reason = "unsupported"
	ReasonIO             Reason = "io_error"
)

// Finding is one thing an engine found in a sample.
type Finding struct {
	Engine    string `json:"engine"`
	Signature string `json:"signature"`
	// Path is the path inside an archive, if the engine reports one.
	Path string `json:"path"`
}

// ReasonError is an error that carries the Reason it should be reported
// with. Engines return it (wrapped or not) to say, for example, that clamd
// refused a stream as too large.
type ReasonError struct {
	Reason  Reason
	Verdict Verdict // Error or Skipped; zero means Error
	Err     error
}

func (e *ReasonError) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return e.Err.Error()
}

func (e *ReasonError) Unwrap() error { return e.Err }

// Errorf returns a *ReasonError with verdict Error and the given reason.
func Errorf(reason Reason, format string, args ...any) error {
	return &ReasonError{Reason: reason, Verdict: Error, Err: fmt.Errorf(format, args...)}
}

// Skipf returns a *ReasonError with verdict Skipped and the given reason.
func Skipf(reason Reason, format string, args ...any) error {
	return &ReasonError{Reason: reason, Verdict: Skipped, Err: fmt.Errorf(format, args...)}
}

// Classify maps an error to the verdict and reason it must be reported
// with. It never returns Clean: a nil error is still an error here, because
// callers only call it on failure paths.
func Classify(err error) (Verdict, Reason) {
	var re *ReasonError
	switch {
	case errors.As(err, &re):
		v := re.Verdict
		if v != Skipped {
			v = Error
		}
		r := re.Reason
		if r == ReasonNone {
			r = ReasonEngineError
		}
		return v, r
	case errors.Is(err, context.DeadlineExceeded):
		return Error, ReasonTimeout
	}
	return Error, ReasonEngineError
}

// ReadReason is the reason for a failure to read a sample's own bytes: a
// file that is gone, one we may not read, a deadline, anything else.
func ReadReason(err error) Reason {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, fs.ErrNotExist):
		return ReasonNotFound
	case errors.Is(err, fs.ErrPermission):
		return ReasonAccessDenied
	}
	return ReasonIO
}
