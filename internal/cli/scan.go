package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/lazaret/lazaret/internal/build"
	"github.com/lazaret/lazaret/internal/client"
	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/progress"
	"github.com/lazaret/lazaret/internal/scan"
)

type scanCmd struct {
	Paths     []string `arg:"" optional:"" name:"path" help:"Files or folders to scan; - reads standard input."`
	Recursive bool     `short:"r" help:"Scan folders recursively (without it, only the files directly inside)."`
	JSON      bool     `name:"json" help:"Print one job JSON per line instead of clamdscan-style lines."`
	FileList  string   `name:"file-list" short:"f" type:"path" placeholder:"FILE" help:"Scan the paths listed in FILE, one a line, as they are read (- reads standard input)."`
	Engine    []string `name:"engine" placeholder:"NAME" help:"Use only this configured engine (repeatable)."`
	Infected  bool     `short:"i" help:"Print only infected files and errors."`
	Jobs      int      `short:"j" default:"0" help:"Files scanned at once (default: 2 per CPU, at most 16)."`
	Server    string   `help:"Send the files to a running lazaret server (also LAZARET_SERVER; token from LAZARET_TOKEN)." placeholder:"URL"`
}

// item is one path to scan, numbered so that output keeps input order.
type item struct {
	seq  int
	path string
	size int64 // -1 if unknown
	err  error // a walk error to report as this path's result
}

type outcome struct {
	seq  int
	path string
	job  *scan.Job
}

func (c *scanCmd) run(ctx context.Context, g *globals, env Env) int {
	if len(c.Paths) == 0 && c.FileList == "" {
		return errorf(env, errors.New("scan: give paths to scan, - for standard input, or --file-list"))
	}
	if c.FileList == "-" && slices.Contains(c.Paths, "-") {
		// The list is read while the files are scanned: both would
		// read standard input at once.
		return errorf(env, errors.New("scan: standard input cannot be both a path (-) and the file list (--file-list -)"))
	}
	jobs := c.Jobs
	if jobs <= 0 {
		jobs = min(2*runtime.NumCPU(), 16)
	}
	if c.Server == "" {
		c.Server = env.Getenv("LAZARET_SERVER")
	}
	var scanOne func(ctx context.Context, it item) *scan.Job
	if c.Server != "" {
		cl, err := client.New(c.Server, env.Getenv("LAZARET_TOKEN"), jobs)
		if err != nil {
			return errorf(env, err)
		}
		defer cl.Close()
		scanOne = func(ctx context.Context, it item) *scan.Job { return scanRemote(ctx, env, cl, it) }
	} else {
		cfg, err := g.loadConfig(env)
		if err != nil {
			return errorf(env, err)
		}
		sc, err := build.NewScanning(ctx, cfg, c.Engine, false, nil, NewLogger(cfg, env.Stderr))
		if err != nil {
			return errorf(env, err)
		}
		defer sc.Close()
		scanOne = func(ctx context.Context, it item) *scan.Job { return scanLocal(ctx, env, sc.Pipeline, it) }
	}

	bar := progress.New(env.Stderr, isTerminal(env, env.Stderr))
	items := make(chan item, 64)
	outcomes := make(chan outcome, 64)
	// Results are printed in input order, so the ones done behind a
	// slow file wait for it; ahead bounds how many, else a long list
	// behind one big file would pile up its results in memory.
	ahead := make(chan struct{}, maxAhead)
	go func() {
		defer close(items)
		c.walk(ctx, env, items, ahead, bar)
		bar.TotalKnown()
	}()
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range items {
				job := scanOne(ctx, it)
				outcomes <- outcome{seq: it.seq, path: it.path, job: job}
			}
		}()
	}
	go func() { wg.Wait(); close(outcomes) }()

	code := c.print(env, outcomes, ahead, bar)
	bar.Stop()
	if ctx.Err() != nil {
		fmt.Fprintln(env.Stderr, "lazaret: scan: interrupted")
		return ExitError
	}
	return code
}

// maxAhead bounds the paths taken for scanning and not yet printed.
const maxAhead = 1024

// print writes results in input order and returns the exit code. It
// frees a place in ahead for each result written.
func (c *scanCmd) print(env Env, outcomes <-chan outcome, ahead <-chan struct{}, bar *progress.Bar) int {
	w := bufio.NewWriter(env.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	pending := map[int]outcome{}
	next := 0
	infected, failed := false, false
	for o := range outcomes {
		bar.Done(o.job.Size, o.job.Verdict == scan.Infected)
		pending[o.seq] = o
		for {
			o, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			<-ahead
			switch o.job.Verdict {
			case scan.Infected:
				infected = true
			case scan.Clean:
			default:
				failed = true
			}
			if c.JSON {
				enc.Encode(o.job)
			} else {
				c.printLine(env, w, o)
			}
		}
		// Flush per batch so a long scan shows results as they come.
		if len(pending) == 0 {
			w.Flush()
		}
	}
	switch {
	case infected:
		return ExitInfected
	case failed:
		return ExitError
	}
	return ExitClean
}

func (c *scanCmd) printLine(env Env, w io.Writer, o outcome) {
	j := o.job
	switch j.Verdict {
	case scan.Clean:
		if !c.Infected {
			fmt.Fprintf(w, "%s: OK\n", o.path)
		}
	case scan.Infected:
		fmt.Fprintf(w, "%s: %s FOUND\n", o.path, j.FirstSignature())
	default:
		reason := string(j.Reason)
		if reason == "" {
			reason = string(scan.ReasonEngineError)
		}
		fmt.Fprintf(w, "%s: ERROR %s\n", o.path, reason)
		if j.Error != "" {
			fmt.Fprintf(env.Stderr, "lazaret: %s: %s\n", o.path, j.Error)
		}
	}
}

// scanLocal runs one path through the pipeline.
func scanLocal(ctx context.Context, env Env, p *pipeline.Pipeline, it item) *scan.Job {
	req := pipeline.Request{Name: filepath.Base(it.path), Size: it.size, Source: scan.Source{Kind: "file", Path: it.path}}
	switch {
	case it.err != nil:
		req.Body = errReader{it.err}
	case it.path == "-":
		req.Name, req.Source.Path, req.Body = "stdin", "", env.Stdin
	default:
		f := &lazyFile{path: it.path}
		defer f.Close()
		req.Body = f
	}
	job, _ := p.Scan(ctx, req) // no store: the error is always nil
	return job
}

// scanRemote asks the server for a cached verdict by SHA-256 and uploads
// the file only on a miss. Every failure is an error verdict, never clean.
func scanRemote(ctx context.Context, env Env, cl *client.Client, it item) *scan.Job {
	failed := func(reason scan.Reason, err error) *scan.Job {
		return &scan.Job{Status: scan.Done, Verdict: scan.Error, Reason: reason, Name: filepath.Base(it.path),
			Size: max(it.size, 0), Source: scan.Source{Kind: "file", Path: it.path}, Error: err.Error()}
	}
	if it.err != nil {
		return failed(scan.ReadReason(it.err), it.err)
	}
	if it.path == "-" {
		job, err := cl.Scan(ctx, "stdin", env.Stdin, -1)
		if err != nil {
			return failed(scan.ReasonEngineError, err)
		}
		return job
	}
	f, err := os.Open(it.path)
	if err != nil {
		return failed(scan.ReadReason(err), err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return failed(scan.ReadReason(err), err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	job, err := cl.Verdict(ctx, sum)
	if err != nil {
		return failed(scan.ReasonEngineError, err)
	}
	if job != nil {
		job.Name, job.Size = filepath.Base(it.path), n
		return job
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return failed(scan.ReasonIO, err)
	}
	job, err = cl.Scan(ctx, filepath.Base(it.path), f, n)
	if err != nil {
		return failed(scan.ReasonEngineError, err)
	}
	if job.SHA256 != sum {
		// The file changed between hashing and upload: the verdict is
		// about other bytes than the ones we hashed.
		return failed(scan.ReasonIO, fmt.Errorf("%s changed while it was scanned", it.path))
	}
	return job
}

// walk sends every path to scan, in order: the arguments, then the lines
// of --file-list as they are read. The list is never held whole, so a
// list of any length is scanned in bounded memory, and scanning starts
// with its first line.
//
// Each path takes a place in ahead, which print frees once the path's
// result is written.
func (c *scanCmd) walk(ctx context.Context, env Env, out chan<- item, ahead chan<- struct{}, bar *progress.Bar) {
	seq := 0
	send := func(it item) bool {
		select {
		case ahead <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		it.seq = seq
		seq++
		bar.AddTotal(1)
		select {
		case out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var list *bufio.Scanner
	if c.FileList != "" {
		// Opened before anything is scanned: a list that cannot be
		// opened is the one result, as when lists were read whole.
		r, err := openFileList(c.FileList, env)
		if err != nil {
			send(item{path: c.FileList, size: -1, err: err})
			return
		}
		defer r.Close()
		list = bufio.NewScanner(r)
		list.Buffer(make([]byte, 4096), maxListLine)
	}
	for _, root := range c.Paths {
		if !c.visit(ctx, root, send) {
			return
		}
	}
	if list == nil {
		return
	}
	for list.Scan() {
		line := strings.TrimRight(list.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line == "-" && c.FileList == "-" {
			// Standard input is the list itself; a worker reading it
			// as a sample would race this loop for its bytes.
			if !send(item{path: line, size: -1, err: errStdinIsList}) {
				return
			}
			continue
		}
		if !c.visit(ctx, line, send) {
			return
		}
	}
	if err := list.Err(); err != nil {
		// The lines before this one were scanned; the list's own
		// failure is one more result, which makes the exit code 2
		// unless something was infected.
		send(item{path: c.FileList, size: -1, err: fmt.Errorf("file list %s: %w", c.FileList, err)})
	}
}

// errStdinIsList is the result of a "-" line in a file list read from
// standard input.
var errStdinIsList = errors.New("standard input is the file list, it cannot also be scanned")

// visit sends root, or the files in it when it is a folder (all of them
// with --recursive). It reports false when the walk is to stop.
func (c *scanCmd) visit(ctx context.Context, root string, send func(item) bool) bool {
	if root == "-" {
		return send(item{path: "-", size: -1})
	}
	fi, err := os.Stat(root)
	if err != nil {
		return send(item{path: root, size: -1, err: err})
	}
	if !fi.IsDir() {
		return send(item{path: root, size: fi.Size()})
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !send(item{path: path, size: -1, err: err}) {
				return ctx.Err()
			}
			return nil
		}
		if d.IsDir() {
			if path != root && !c.Recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symlinks, sockets, devices: not followed
		}
		var size int64 = -1
		if info, err := d.Info(); err == nil {
			size = info.Size()
		}
		if !send(item{path: path, size: size}) {
			return ctx.Err()
		}
		return nil
	})
	return err == nil
}

// maxListLine bounds one line of a --file-list.
const maxListLine = 64 << 10

// openFileList opens a --file-list: a file, or standard input for "-".
func openFileList(name string, env Env) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(env.Stdin), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("file list: %w", err)
	}
	return f, nil
}

// lazyFile opens its file on first read, so that the open error (not
// found, permission denied) goes through the pipeline like any read error
// and gets its reason there.
type lazyFile struct {
	path string
	f    *os.File
	err  error
}

func (l *lazyFile) Read(p []byte) (int, error) {
	if l.f == nil && l.err == nil {
		l.f, l.err = os.Open(l.path)
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Read(p)
}

func (l *lazyFile) Close() error {
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
