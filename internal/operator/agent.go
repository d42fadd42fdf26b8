package operator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
	"github.com/lazaret/lazaret/internal/scan"
)

// ScanFunc runs `lazaret scan` with the given flags, standard input and
// output, and returns its exit code. The CLI passes its own scan command,
// run in-process, so the agent scans exactly as `lazaret scan --json`
// does (through a lazaret server when LAZARET_SERVER is set).
type ScanFunc func(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int

// AgentOptions configure RunAgent.
type AgentOptions struct {
	// VirusScan is the scan to run and report.
	VirusScan types.NamespacedName
	// Job is the name of the Job the agent runs in, recorded in the
	// report.
	Job string
	// Generation is the VirusScan's metadata.generation the Job was made
	// from (its volumes are that spec's); the agent refuses to scan
	// another. 0 skips the check. The report records the generation
	// scanned either way.
	Generation int64
	// Scan runs `lazaret scan`.
	Scan ScanFunc
	// MaxListed bounds scanResults and scanErrors each (default 1000),
	// to keep the VirusScan well under the API server's object size
	// limit; the report's counts stay complete.
	MaxListed int
	// Logger receives progress and problems.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// errSpecChanged is the agent's error when the VirusScan's spec is not the
// one its Job was made from.
var errSpecChanged = errors.New("spec changed since the scan job was made")

// maxListedBytes bounds the JSON of the items listed in a report (etcd
// keeps objects under 1.5 MiB).
const maxListedBytes = 512 << 10

// RunAgent scans the VirusScan's targets, mounted where TargetMountPath
// says, and writes scanResults, scanErrors and the report into its status.
// It returns an error only when it could not scan or could not report;
// infected files are a successful run.
func RunAgent(ctx context.Context, c client.Client, opts AgentOptions) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = 1000
	}
	var vs v1beta1.VirusScan
	if err := c.Get(ctx, opts.VirusScan, &vs); err != nil {
		return fmt.Errorf("agent: virusscan %s: %w", opts.VirusScan, err)
	}
	if opts.Generation != 0 && vs.Generation != opts.Generation {
		return fmt.Errorf("agent: virusscan %s: %w: generation %d, the job's %d", opts.VirusScan, errSpecChanged, vs.Generation, opts.Generation)
	}
	targets, err := agentTargets(&vs.Spec)
	if err != nil {
		return fmt.Errorf("agent: virusscan %s: %w", opts.VirusScan, err)
	}
	rep := newReport(opts.MaxListed)
	if err := scanTargets(ctx, targets, opts, rep); err != nil {
		return fmt.Errorf("agent: virusscan %s: %w", opts.VirusScan, err)
	}
	status := map[string]any{
		// Whole lists, even empty, so a retried pod replaces what an
		// earlier attempt may have written.
		"scanResults": nonNil(rep.results),
		"scanErrors":  nonNil(rep.errors),
		"report": v1beta1.VirusScanReport{
			Job:           opts.Job,
			Generation:    vs.Generation,
			ReportedAt:    metav1.NewTime(opts.Now()),
			ScannedFiles:  rep.scanned,
			InfectedFiles: rep.infected,
			FailedFiles:   rep.failed,
			Truncated:     rep.truncated,
		},
	}
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return fmt.Errorf("agent: report: %w", err)
	}
	// A merge patch without a resource version: the operator writes
	// other status fields at the same time, and neither may undo the
	// other's.
	err = retry.OnError(wait.Backoff{Steps: 6, Duration: time.Second, Factor: 2, Jitter: 0.1},
		func(err error) bool {
			return !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err)
		},
		func() error { return c.Status().Patch(ctx, &vs, client.RawPatch(types.MergePatchType, body)) })
	if err != nil {
		return fmt.Errorf("agent: virusscan %s: write report: %w", opts.VirusScan, err)
	}
	opts.Logger.Info("scan reported", "virusscan", opts.VirusScan.String(), "scanned", rep.scanned,
		"infected", rep.infected, "failed", rep.failed, "truncated", rep.truncated)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// agentTarget is one folder to walk.
type agentTarget struct {
	root        string
	excludeFile []*regexp.Regexp
	excludeDir  []*regexp.Regexp
}

// agentTargets compiles the spec's targets. Its error names the pattern
// that does not compile, the one check the CRD's schema cannot make.
func agentTargets(spec *v1beta1.VirusScanSpec) ([]agentTarget, error) {
	compile := func(i int, field string, res []string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for j, re := range res {
			c, err := regexp.Compile(re)
			if err != nil {
				return nil, fmt.Errorf("spec.targets[%d].%s[%d]: %w", i, field, j, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	var out []agentTarget
	for i, t := range spec.Targets {
		at := agentTarget{root: TargetMountPath(i, t)}
		var err error
		if at.excludeFile, err = compile(i, "excludeFiles", t.ExcludeFiles); err != nil {
			return nil, err
		}
		if at.excludeDir, err = compile(i, "excludeDirectories", t.ExcludeDirectories); err != nil {
			return nil, err
		}
		out = append(out, at)
	}
	return out, nil
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// report collects results as they come, bounded in memory.
type report struct {
	mu                        sync.Mutex
	maxListed                 int
	listedBytes               int
	scanned, infected, failed int64
	truncated                 bool
	results                   []v1beta1.VirusScanResultItem
	errors                    []v1beta1.VirusScanErrorItem
}

func newReport(maxListed int) *report { return &report{maxListed: maxListed} }

// room reports whether item, the next of a list that has n, may be
// listed, and counts its size if so. The size is the item's JSON, as the
// status stores it: a path of control characters or invalid UTF-8 takes
// up to six times its length there.
func (r *report) room(n int, item any) bool {
	if n >= r.maxListed {
		r.truncated = true
		return false
	}
	raw, err := json.Marshal(item)
	if err != nil || r.listedBytes+len(raw) > maxListedBytes {
		r.truncated = true
		return false
	}
	r.listedBytes += len(raw)
	return true
}

func (r *report) add(path string, job *scan.Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanned++
	switch job.Verdict {
	case scan.Clean:
	case scan.Infected:
		r.infected++
		sig := job.FirstSignature()
		if sig == "" {
			sig = "unknown"
		}
		item := v1beta1.VirusScanResultItem{FilePath: path, MatchingSignature: sig}
		if r.room(len(r.results), item) {
			r.results = append(r.results, item)
		}
	case scan.Error, scan.Skipped:
		r.addError(path, job.Verdict, job.Reason, job.Error)
	default:
		// Not a verdict: never read as clean.
		r.addError(path, scan.Error, scan.ReasonEngineError, fmt.Sprintf("scan answered verdict %q", job.Verdict))
	}
}

// fail records a file that could not be handed to the scanner at all.
func (r *report) fail(path string, reason scan.Reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanned++
	r.addError(path, scan.Error, reason, msg)
}

func (r *report) addError(path string, v scan.Verdict, reason scan.Reason, msg string) {
	r.failed++
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	item := v1beta1.VirusScanErrorItem{FilePath: path, Verdict: string(v), Reason: string(reason), Message: msg}
	if r.room(len(r.errors), item) {
		r.errors = append(r.errors, item)
	}
}

// listSafe reports whether a path survives a trip through `lazaret scan
// --file-list` unchanged: one line, not trimmed, not "-".
func listSafe(p string) bool {
	return p != "" && p != "-" && !strings.ContainsAny(p, "\n\r") && strings.TrimSpace(p) != ""
}

// scanTargets walks the targets and feeds every regular file to one
// `lazaret scan --json --file-list -`, whose results come back one JSON
// line per path in input order. Each line is matched to the path that
// was sent in its place and checked against it, so a result is never
// attributed to the wrong file; any mismatch fails the whole run.
func scanTargets(ctx context.Context, targets []agentTarget, opts AgentOptions, rep *report) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listR, listW := io.Pipe()
	outR, outW := io.Pipe()
	// The scanner reads ahead of what it has answered by a bounded
	// amount (its in-order window plus a line buffer); this queue holds
	// at least that many paths, so the walker never blocks on it while
	// the reader waits on the scanner.
	expect := make(chan string, 1<<16)

	var wg sync.WaitGroup
	var scanCode int
	wg.Add(2)
	go func() {
		defer wg.Done()
		scanCode = opts.Scan(ctx, []string{"--json", "--file-list", "-"}, listR, outW)
		listR.Close() // unblock a walker whose reader is gone
		outW.Close()
	}()
	var walkErr error
	go func() {
		defer wg.Done()
		defer close(expect)
		walkErr = walkTargets(ctx, targets, rep, func(p string) error {
			select {
			case expect <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
			_, err := io.WriteString(listW, p+"\n")
			return err
		})
		listW.CloseWithError(walkErr)
	}()

	readErr := readResults(outR, expect, rep)
	if readErr != nil {
		cancel()
	}
	outR.Close()
	wg.Wait()
	switch {
	case readErr != nil:
		return readErr
	case walkErr != nil:
		return fmt.Errorf("walk: %w", walkErr)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	if scanCode != 0 && rep.infected == 0 && rep.failed == 0 {
		// Every file answered clean, or none was sent: an exit code
		// that says otherwise is a scanner that did not run (one that
		// could not start, say), never a clean scan.
		return fmt.Errorf("scan exited %d, yet no file was infected or failed", scanCode)
	}
	opts.Logger.Debug("scan finished", "exit_code", scanCode)
	return nil
}

// maxResultLine bounds one line of the scan's output, one job: the
// client's own bound on a job the server sends (client.maxReply).
const maxResultLine = 16 << 20

// readResults matches each result line to the path sent in its place.
func readResults(out io.Reader, expect <-chan string, rep *report) error {
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 0, 64<<10), maxResultLine)
	for lines.Scan() {
		if len(bytes.TrimSpace(lines.Bytes())) == 0 {
			continue
		}
		var job scan.Job
		if err := json.Unmarshal(lines.Bytes(), &job); err != nil {
			return fmt.Errorf("read scan output: %w", err)
		}
		p, ok := <-expect
		if !ok {
			return errors.New("scan answered more results than files were sent")
		}
		// Local scans report the path, remote ones the file's name.
		if job.Source.Path != p && job.Name != filepath.Base(p) {
			return fmt.Errorf("scan result for %q (%q) does not match the file sent, %q", job.Name, job.Source.Path, p)
		}
		rep.add(p, &job)
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("read scan output: %w", err)
	}
	if p, ok := <-expect; ok {
		return fmt.Errorf("scan ended before %s was scanned", p)
	}
	return nil
}

// walkTargets calls send for every regular file not excluded, and records
// what cannot be sent. Symbolic links are not followed: they may point
// outside the volume.
func walkTargets(ctx context.Context, targets []agentTarget, rep *report, send func(string) error) error {
	for _, t := range targets {
		err := filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				// An unreadable folder (or a missing target) is a
				// failure to scan what is in it, never nothing.
				rep.fail(p, scan.ReadReason(err), err.Error())
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if p != t.root && matchAny(t.excludeDir, p) {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || matchAny(t.excludeFile, p) {
				return nil
			}
			if !listSafe(p) {
				rep.fail(p, scan.ReasonUnsupported, "file name cannot be passed to the scanner (line break)")
				return nil
			}
			return send(p)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
