package api

import (
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/blob"
	"github.com/lazaret/lazaret/internal/scan"
)

// reportOf returns the engine run of job whose report to serve: the named
// engine's, or the first engine's that wrote one.
func reportOf(job *scan.Job, engine string) (*scan.EngineRun, error) {
	for i := range job.Engines {
		if e := &job.Engines[i]; e.Report != nil && (engine == "" || e.Name == engine) {
			return e, nil
		}
	}
	switch {
	case job.Status != scan.Done:
		return nil, apiErr(http.StatusNotFound, "not_ready", "job %s is %s", job.ID, job.Status)
	case engine != "":
		return nil, apiErr(http.StatusNotFound, "no_report", "engine %q wrote no report for job %s", engine, job.ID)
	}
	return nil, apiErr(http.StatusNotFound, "no_report", "job %s has no analyzer report", job.ID)
}

// serveReport sends the report of run, one of job's engines, as a file
// to save, never to render: it is an analyzer's output about untrusted
// content, and may hold whatever that content put in it. Exactly the
// report's recorded size is sent (with Range and If-None-Match support).
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request, job *scan.Job, run *scan.EngineRun) error {
	if s.cfg.Reports == nil {
		return apiErr(http.StatusNotFound, "no_report", "this server keeps no analyzer reports")
	}
	ref := run.Report
	if !sha256Re.MatchString(ref.SHA256) || ref.Size < 0 {
		return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "the job's report reference is invalid"}
	}
	rc, err := s.cfg.Reports.Open(r.Context(), ref.SHA256)
	if errors.Is(err, blob.ErrNotFound) {
		return apiErr(http.StatusGone, "report_gone", "the report of job %s is no longer kept", job.ID)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "storage_unavailable", Message: "the report could not be read", Err: err}
	}
	defer rc.Close()
	if st, ok := rc.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err != nil || fi.Size() != ref.Size {
			return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "the kept report does not match the job's reference", Err: err}
		}
	}
	ct := ref.ContentType
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": reportFilename(job.ID, run.Name, ct)}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("ETag", `"`+ref.SHA256+`"`)
	if ra, ok := rc.(io.ReaderAt); ok {
		http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(ra, 0, ref.Size))
		return nil
	}
	h.Set("Content-Length", strconv.FormatInt(ref.Size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, io.LimitReader(rc, ref.Size))
	}
	return nil
}

// reportExt names the file extension of the usual report types.
var reportExt = map[string]string{
	"application/json": ".json", "text/plain": ".txt", "text/html": ".html", "application/xml": ".xml",
	"text/xml": ".xml", "application/pdf": ".pdf", "application/zip": ".zip", "text/csv": ".csv",
}

// reportFilename is the name a report is saved under:
// <job>-<engine>.<ext>, in characters every file system takes.
func reportFilename(jobID, engine, contentType string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, engine)
	mt, _, _ := mime.ParseMediaType(contentType)
	ext, ok := reportExt[mt]
	if !ok {
		ext = ".bin"
	}
	return jobID + "-" + safe + ext
}
