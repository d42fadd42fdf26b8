package scan

import (
	"context"
	"io"
	"time"
)

// Engine scans samples. Implementations must be safe for concurrent use.
//
// Scan returns the engine's Result. A nil error with Verdict Clean is the
// only way an engine says "nothing found"; every failure must be returned as
// an error (use Errorf or Skipf to attach a reason) or as a Result whose
// Verdict is Error or Skipped. The pipeline normalises whatever comes back
// with Normalize, so an engine that forgets a field still fails closed.
type Engine interface {
	// Name is the configured name, unique within a configuration ("clamav").
	Name() string
	// Type is the engine kind ("clamd", "command", "builtin", "sandbox").
	Type() string
	// Version identifies the engine and its signatures; it is part of the
	// verdict cache key, so it must change whenever the signatures do.
	Version(ctx context.Context) (string, error)
	// Scan scans one sample.
	Scan(ctx context.Context, s Sample) (Result, error)
}

// Pinger is implemented by engines that can report their health cheaply.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Reloader is implemented by engines whose signatures can be reloaded.
type Reloader interface {
	Reload(ctx context.Context) error
}

// OnDemander is implemented by engines that may scan only the samples
// whose job names them (Source.Engine, menagerie's POST /{engine}/upload):
// slow analyzers that must not hold up every other scan. When OnDemand
// reports true, the pipeline leaves the engine out of jobs that name no
// engine, and out of their verdict cache key.
type OnDemander interface {
	OnDemand() bool
}

// Result is what one engine says about one sample.
type Result struct {
	Verdict  Verdict
	Reason   Reason
	Findings []Finding
	// Detail is a human-readable note (an engine's error message, say).
	Detail string
	// Report, if set, is a file the engine wrote about the sample (an
	// analyzer's report), already kept by the engine under its SHA-256.
	Report *Report
}

// Report is a file an engine wrote about a sample, kept apart from the job
// under its content's SHA-256; the job names it in its EngineRun, and
// GET /v1/jobs/{id}/report serves it.
type Report struct {
	// SHA256 is the lowercase hex SHA-256 of the report's bytes: the key
	// it is kept under.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// ContentType is the media type the report is served with.
	ContentType string `json:"content_type"`
}

// Sample is the bytes under scan, spooled once, with their name, size and
// SHA-256. Engines read the bytes through Body.
type Sample struct {
	Name   string
	Size   int64
	SHA256 string // lowercase hex
	Body   Body
}

// Body gives access to a sample's spooled bytes.
type Body interface {
	// Open returns a new reader positioned at the first byte. It may be
	// called concurrently; every reader is independent.
	Open() (io.ReadCloser, error)
	// Path returns the name of a file holding exactly the sample's bytes,
	// for engines that need a path (command engines). In-memory bodies
	// write a 0600 temporary file on first call; it is removed with the
	// body.
	Path() (string, error)
}

// Normalize makes an engine's answer fail closed: an error becomes a
// non-clean result with a reason; a Clean result with findings becomes
// Infected; an unknown or empty verdict becomes Error; findings are
// attributed to the engine.
func Normalize(engine string, r Result, err error) Result {
	if err != nil {
		v, reason := Classify(err)
		if r.Verdict == Infected && len(r.Findings) > 0 {
			// An engine that found something and then failed still found it.
			v, reason = Infected, ReasonNone
		}
		detail := err.Error()
		return Result{Verdict: v, Reason: reason, Findings: attribute(engine, r.Findings), Detail: detail}
	}
	switch {
	case len(r.Findings) > 0 && (r.Verdict == Clean || r.Verdict == Infected):
		r.Verdict, r.Reason = Infected, ReasonNone
	case r.Verdict == Infected:
		// Infected with no named finding: keep it, name it.
		r.Findings = []Finding{{Signature: "unknown"}}
		r.Reason = ReasonNone
	case r.Verdict == Clean:
		r.Reason = ReasonNone
	case r.Verdict == Error || r.Verdict == Skipped:
		if r.Reason == ReasonNone {
			r.Reason = ReasonEngineError
		}
	default:
		r.Verdict, r.Reason = Error, ReasonEngineError
		if r.Detail == "" {
			r.Detail = "engine returned no verdict"
		}
	}
	r.Findings = attribute(engine, r.Findings)
	return r
}

func attribute(engine string, fs []Finding) []Finding {
	if len(fs) == 0 {
		return nil
	}
	out := make([]Finding, len(fs))
	for i, f := range fs {
		f.Engine = engine
		out[i] = f
	}
	return out
}

// Combine decides the verdict of a sample from its engines' normalised
// results: infected if any engine found something, else error if any
// failed, else skipped if any skipped, else clean. No results at all is an
// error: a sample nothing looked at is not clean.
func Combine(results []Result) (Verdict, Reason) {
	if len(results) == 0 {
		return Error, ReasonEngineError
	}
	best := results[0]
	for _, r := range results[1:] {
		if r.Verdict.rank() > best.Verdict.rank() {
			best = r
		}
	}
	switch best.Verdict {
	case Clean:
		return Clean, ReasonNone
	case Infected:
		return Infected, ReasonNone
	case Skipped:
		return Skipped, best.Reason
	case Error:
		return Error, best.Reason
	}
	return Error, ReasonEngineError
}

// EngineStatus is one engine's name, type, version and health, as
// `lazaret engines` and GET /v1/engines show it.
type EngineStatus struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Version string `json:"version"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// SignaturesUpdated is when the engine's signatures last changed,
	// if it knows.
	SignaturesUpdated *time.Time `json:"signatures_updated,omitempty"`
}

// SignatureDater is implemented by engines that know when their
// signatures last changed. A zero time with a nil error means unknown
// (an engine with no signature folder, a clamd with only custom
// databases and none given to lazaret).
type SignatureDater interface {
	SignaturesUpdated(ctx context.Context) (time.Time, error)
}
