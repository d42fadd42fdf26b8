package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/pipeline"
	"github.com/lazaret/lazaret/internal/queue"
	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// recorder remembers the error its reader returned, so that a handler can
// tell a client's bad body (413, 400) from an engine's failure after the
// pipeline has turned the read error into a verdict.
type recorder struct {
	r   io.Reader
	err error
}

func (rc *recorder) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if err != nil && err != io.EOF && rc.err == nil {
		rc.err = err
	}
	return n, err
}

// bodyError turns a failed read of the request body into an API error.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit of %d bytes", mbe.Limit)
	}
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "malformed request body: " + err.Error(), Err: err}
}

// limitSeen is a request body that remembers the size limit's error.
type limitSeen struct {
	io.ReadCloser
	limit error
}

func (l *limitSeen) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	if mbe := (*http.MaxBytesError)(nil); err != nil && l.limit == nil && errors.As(err, &mbe) {
		l.limit = err
	}
	return n, err
}

// or returns the limit's error if the body met it, else err.
func (l *limitSeen) or(err error) error {
	if l.limit != nil {
		return l.limit
	}
	return err
}

// maxUploads bounds the files in one multipart request.
const maxUploads = 100

// eachUpload calls fn for every uploaded file: each multipart part named
// field, or the raw body (named by ?name=) when the request is not
// multipart. Parts are streamed, never buffered whole.
func eachUpload(r *http.Request, field string, fn func(name string, body io.Reader) error) (int, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if !strings.HasPrefix(mt, "multipart/") {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "upload"
		}
		rec := &recorder{r: r.Body}
		if err := fn(name, rec); err != nil {
			return 1, err
		}
		if rec.err != nil {
			return 1, bodyError(rec.err)
		}
		return 1, nil
	}
	// The multipart reader reports a body cut by the size limit inside a
	// part's headers or a boundary as malformed: the limit's own error
	// is kept here, so that the answer is 413 all the same.
	lim := &limitSeen{ReadCloser: r.Body}
	r.Body = lim
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, apiErr(http.StatusBadRequest, "bad_request", "malformed multipart body: %v", err)
	}
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, bodyError(lim.or(err))
		}
		if part.FormName() != field {
			part.Close()
			continue
		}
		if n == maxUploads {
			return n, apiErr(http.StatusBadRequest, "too_many_files", "at most %d files in one request", maxUploads)
		}
		n++
		name := part.FileName()
		if name == "" {
			name = field
		}
		rec := &recorder{r: part}
		if err := fn(name, rec); err != nil {
			return n, err
		}
		if rec.err != nil {
			return n, bodyError(lim.or(rec.err))
		}
		part.Close()
	}
	if n == 0 {
		return 0, apiErr(http.StatusBadRequest, "no_file", "the multipart body has no %q field", field)
	}
	return n, nil
}

// engineFailed reports whether a job failed because an engine could not
// answer: the API then says 503, so clients retry, and never treats it as
// an answer about the content.
func engineFailed(j *scan.Job) bool {
	return j.Verdict == scan.Error && (j.Reason == scan.ReasonEngineError || j.Reason == scan.ReasonTimeout)
}

func (s *Server) postScan(w http.ResponseWriter, r *http.Request) error {
	var jobs []*scan.Job
	var storeErr error
	_, err := eachUpload(r, "file", func(name string, body io.Reader) error {
		job, err := s.cfg.Scanner.Scan(r.Context(), pipeline.Request{
			Name: name, Body: body, Size: -1, Source: scan.Source{Kind: "upload"}, Keep: s.cfg.Keep,
		})
		if err != nil && storeErr == nil {
			storeErr = err
		}
		jobs = append(jobs, job)
		return nil
	})
	if err != nil {
		return err
	}
	if storeErr != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the scan ran but its result could not be stored", Err: storeErr}
	}
	if len(jobs) == 1 {
		status := http.StatusOK
		if engineFailed(jobs[0]) {
			w.Header().Set("Retry-After", "5")
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, jobs[0])
		return nil
	}
	writeJSON(w, http.StatusOK, jobs)
	return nil
}

// enqueue stores an upload, records its queued job and publishes it.
func (s *Server) enqueue(ctx context.Context, name string, body io.Reader, engine string) (*scan.Job, error) {
	if s.cfg.Queue == nil || s.cfg.Blobs == nil {
		return nil, apiErr(http.StatusServiceUnavailable, "queue_unavailable", "this server has no job queue")
	}
	id := s.cfg.Scanner.NewID()
	h := sha256.New()
	size, err := s.cfg.Blobs.Put(ctx, id, io.TeeReader(body, h))
	if err != nil {
		s.cfg.Blobs.Delete(context.WithoutCancel(ctx), id)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, bodyError(mbe)
		}
		if rec, ok := body.(*recorder); ok && rec.err != nil {
			return nil, bodyError(rec.err)
		}
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "storage_unavailable", Message: "the upload could not be stored", Err: err}
	}
	job := &scan.Job{
		ID: id, Status: scan.Queued, Name: name, Size: size, SHA256: hexSum(h),
		Source: scan.Source{Kind: "upload", Engine: engine}, CreatedAt: time.Now().UTC(),
	}
	if err := s.cfg.Jobs.CreateJob(ctx, job); err != nil {
		s.cfg.Blobs.Delete(context.WithoutCancel(ctx), id)
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the job could not be stored", Err: err}
	}
	if err := s.cfg.Queue.Publish(ctx, queue.Message{JobID: id}); err != nil {
		// Not queued means never scanned: close the job as an error
		// rather than leave it queued forever.
		bg := context.WithoutCancel(ctx)
		failed := *job
		fin := time.Now().UTC()
		failed.Status, failed.Verdict, failed.Reason, failed.Error, failed.FinishedAt = scan.Done, scan.Error, scan.ReasonEngineError, "queue unavailable: "+err.Error(), &fin
		s.cfg.Jobs.UpdateJob(bg, &failed, scan.Queued)
		s.cfg.Blobs.Delete(bg, id)
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "queue_unavailable", Message: "the job could not be queued", Err: err}
	}
	return job, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func (s *Server) postJobs(w http.ResponseWriter, r *http.Request) error {
	var jobs []*scan.Job
	n, err := eachUpload(r, "file", func(name string, body io.Reader) error {
		job, err := s.enqueue(r.Context(), name, body, "")
		if err != nil {
			return err
		}
		jobs = append(jobs, job)
		return nil
	})
	if err != nil {
		return err
	}
	if n == 1 {
		writeJSON(w, http.StatusAccepted, jobs[0])
		return nil
	}
	writeJSON(w, http.StatusAccepted, jobs)
	return nil
}

var (
	jobIDRe  = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// loadJob returns the job named by the {id} path value, or a 404.
func (s *Server) loadJob(r *http.Request) (*scan.Job, error) {
	id := strings.ToUpper(r.PathValue("id"))
	if !jobIDRe.MatchString(id) {
		return nil, apiErr(http.StatusNotFound, "not_found", "no job %q", r.PathValue("id"))
	}
	job, err := s.cfg.Jobs.GetJob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, "not_found", "no job %q", id)
	}
	if err != nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store did not answer", Err: err}
	}
	return job, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	job, err := s.loadJob(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

// getReport serves an analyzer's report file: that of the engine named
// by ?engine=, or else of the first of the job's engines that wrote one
// (sandbox engines do). A job without one answers 404 no_report (or
// not_ready while it runs); a report no longer kept, 410 report_gone.
func (s *Server) getReport(w http.ResponseWriter, r *http.Request) error {
	job, err := s.loadJob(r)
	if err != nil {
		return err
	}
	run, err := reportOf(job, r.URL.Query().Get("engine"))
	if err != nil {
		return err
	}
	return s.serveReport(w, r, job, run)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.JobFilter{
		Verdict: scan.Verdict(q.Get("verdict")),
		Status:  scan.Status(q.Get("status")),
		SHA256:  strings.ToLower(q.Get("sha256")),
		Bucket:  q.Get("bucket"),
		Cursor:  q.Get("cursor"),
	}
	if f.Verdict != "" && !f.Verdict.Valid() {
		return apiErr(http.StatusBadRequest, "bad_request", "verdict %q is not one of clean, infected, error, skipped", f.Verdict)
	}
	switch f.Status {
	case "", scan.Queued, scan.Running, scan.Done:
	default:
		return apiErr(http.StatusBadRequest, "bad_request", "status %q is not one of queued, running, done", f.Status)
	}
	if f.SHA256 != "" && !sha256Re.MatchString(f.SHA256) {
		return apiErr(http.StatusBadRequest, "bad_request", "sha256 must be 64 hex digits")
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "since must be an RFC 3339 time: %v", err)
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxLimit {
			return apiErr(http.StatusBadRequest, "bad_request", "limit must be a number from 1 to %d", store.MaxLimit)
		}
		f.Limit = n
	}
	page, err := s.cfg.Jobs.ListJobs(r.Context(), f)
	if errors.Is(err, store.ErrInvalid) {
		return apiErr(http.StatusBadRequest, "bad_request", "%v", err)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store did not answer", Err: err}
	}
	jobs := page.Jobs
	if jobs == nil {
		jobs = []*scan.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "next_cursor": page.NextCursor})
	return nil
}

func (s *Server) getVerdict(w http.ResponseWriter, r *http.Request) error {
	sum := strings.ToLower(r.PathValue("sha256"))
	if !sha256Re.MatchString(sum) {
		return apiErr(http.StatusBadRequest, "bad_request", "sha256 must be 64 hex digits")
	}
	job, err := s.cfg.Scanner.Lookup(r.Context(), sum)
	if errors.Is(err, store.ErrNotFound) {
		return apiErr(http.StatusNotFound, "not_found", "no verdict for %s under the current engine versions", sum)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store did not answer", Err: err}
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}
