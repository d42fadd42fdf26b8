package api

import (
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/lazaret/lazaret/internal/scan"
)

// Menagerie's routes, mapped onto lazaret's jobs: POST /{engine}/upload
// queues a job for that one engine and answers {"jobid": ...};
// /result/{id} answers Running, Success or Failed; /link/{id} is the
// result file: the analyzer's report when the engine wrote one (a
// sandbox engine), else the job JSON.

func (s *Server) menagerieUpload(w http.ResponseWriter, r *http.Request) error {
	engine := r.PathValue("engine")
	known := slices.ContainsFunc(s.cfg.Engines.Status(r.Context()), func(e scan.EngineStatus) bool { return e.Name == engine })
	if !known {
		return apiErr(http.StatusNotFound, "unknown_engine", "no engine named %q", engine)
	}
	var job *scan.Job
	_, err := eachUpload(r, "upload", func(name string, body io.Reader) error {
		if job != nil {
			return apiErr(http.StatusBadRequest, "too_many_files", "one upload per request")
		}
		j, err := s.enqueue(r.Context(), name, body, engine)
		job = j
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"jobid": job.ID})
	return nil
}

func (s *Server) menagerieResult(w http.ResponseWriter, r *http.Request) error {
	job, err := s.loadJob(r)
	if err != nil {
		return err
	}
	out := map[string]string{"link": "/link/" + job.ID}
	switch {
	case job.Status != scan.Done:
		out["status"], out["summary"] = "Running", string(job.Status)
	case job.Verdict == scan.Clean:
		out["status"], out["summary"] = "Success", "clean"
	case job.Verdict == scan.Infected:
		out["status"], out["summary"] = "Success", "infected: "+job.FirstSignature()
	default:
		out["status"], out["summary"] = "Failed", fmt.Sprintf("%s: %s", job.Verdict, job.Reason)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) menagerieLink(w http.ResponseWriter, r *http.Request) error {
	job, err := s.loadJob(r)
	if err != nil {
		return err
	}
	if job.Status != scan.Done {
		return apiErr(http.StatusNotFound, "not_ready", "job %s is %s", job.ID, job.Status)
	}
	if run, err := reportOf(job, job.Source.Engine); err == nil {
		return s.serveReport(w, r, job, run)
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", job.ID+".json"))
	writeJSON(w, http.StatusOK, job)
	return nil
}
