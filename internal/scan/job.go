package scan

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a job is in its life. The state machine:
//
//	          ┌────────── retry / redelivery ─────────┐
//	          ▼                                       │
//	(new) ─▶ queued ─▶ running ─▶ done                │
//	  │        │          └───────────────────────────┘
//	  │        └─▶ done   (decided without a scan: cache hit, size limit, given up)
//	  └─▶ running         (synchronous scans start running)
//	done ─▶ queued        (rescan)
//
// Transition is the only judge of which moves are legal; stores refuse any
// other.
type Status string

// The job statuses.
const (
	StatusNew Status = "" // not yet stored
	Queued    Status = "queued"
	Running   Status = "running"
	Done      Status = "done"
)

var transitions = map[Status][]Status{
	StatusNew: {Queued, Running, Done},
	Queued:    {Running, Done},
	Running:   {Done, Queued},
	Done:      {Queued},
}

// CanTransition reports whether a job may move from one status to another.
// Staying in the same status is allowed only for running (a worker
// refreshing its progress).
func CanTransition(from, to Status) bool {
	if from == to {
		return from == Running
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition returns an error naming the move when it is illegal.
func Transition(from, to Status) error {
	if !CanTransition(from, to) {
		return fmt.Errorf("job status: illegal transition %q -> %q", from, to)
	}
	return nil
}

// Source says where a sample came from.
type Source struct {
	// Kind is "upload", "file", "s3", "proxy", "sweep", "k8s".
	Kind      string `json:"kind"`
	Path      string `json:"path,omitempty"`
	URL       string `json:"url,omitempty"`
	Bucket    string `json:"bucket,omitempty"`
	Key       string `json:"key,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	ETag      string `json:"etag,omitempty"`
	// Engine, when set, restricts the job to that one engine (a
	// menagerie-style POST /{engine}/upload).
	Engine string `json:"engine,omitempty"`
}

// EngineRun is one engine's part in a job, as the job JSON shows it.
type EngineRun struct {
	Name       string  `json:"name"`
	Version    string  `json:"version"`
	Verdict    Verdict `json:"verdict"`
	Reason     Reason  `json:"reason,omitempty"`
	Detail     string  `json:"detail,omitempty"`
	DurationMS int64   `json:"duration_ms"`
	// Report is the engine's report file about the sample, if it wrote
	// one (sandbox analyzers).
	Report *Report `json:"report,omitempty"`
}

// Job is one request to scan one sample from one source. Its JSON form is
// the job of SPEC.md's HTTP API.
type Job struct {
	ID       string      `json:"id"`
	Status   Status      `json:"status"`
	Verdict  Verdict     `json:"verdict,omitempty"`
	Reason   Reason      `json:"reason"`
	Name     string      `json:"name"`
	Size     int64       `json:"size"`
	SHA256   string      `json:"sha256"`
	Source   Source      `json:"source"`
	Findings []Finding   `json:"findings"`
	Engines  []EngineRun `json:"engines"`
	Cached   bool        `json:"cached"`
	Actions  []string    `json:"actions"`
	Error    string      `json:"error"`
	// Attempts counts how many times a worker started this job.
	Attempts   int        `json:"attempts"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// FirstSignature returns the first finding's signature, or "".
func (j *Job) FirstSignature() string {
	if len(j.Findings) == 0 {
		return ""
	}
	return j.Findings[0].Signature
}

// CachedVerdict is a verdict kept for a content hash under a set of engine
// versions. Only definitive verdicts (clean, infected) are cached: an error
// must be retried, and a size limit belongs to a configuration, not to
// content.
type CachedVerdict struct {
	SHA256 string
	// EnginesKey identifies the engines and their versions; see
	// EnginesKey.
	EnginesKey string
	Verdict    Verdict
	Findings   []Finding
	Engines    []EngineRun
	// JobID is the job that produced the verdict.
	JobID     string
	CreatedAt time.Time
}

// MarshalJSON writes the job with empty lists as [] rather than null, so
// clients can iterate without a check.
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job // no methods: no recursion
	p := plain(j)
	if p.Findings == nil {
		p.Findings = []Finding{}
	}
	if p.Engines == nil {
		p.Engines = []EngineRun{}
	}
	if p.Actions == nil {
		p.Actions = []string{}
	}
	return json.Marshal(p)
}
