package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/lazaret/lazaret/internal/bucket"
	"github.com/lazaret/lazaret/internal/s3event"
	"github.com/lazaret/lazaret/internal/store"
)

// postS3Events takes an S3 / MinIO event notification (MinIO's webhook
// target) and queues a scan per new object version. 200 means every event
// is queued (or did not call for a scan); 503 asks the sender to retry.
func (s *Server) postS3Events(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Events == nil {
		return apiErr(http.StatusNotFound, "not_found", "bucket scanning is not configured on this server")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s3event.MaxBodySize+1))
	if err != nil {
		return bodyError(err)
	}
	if len(body) > s3event.MaxBodySize {
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", "an event notification is limited to %d bytes", s3event.MaxBodySize)
	}
	out, err := s.cfg.Events.Handle(r.Context(), body)
	switch {
	case errors.Is(err, bucket.ErrMalformed):
		return apiErr(http.StatusBadRequest, "bad_event", "%v", err)
	case err != nil:
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the event could not be queued; retry", Err: err}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"queued": out.Queued, "duplicates": out.Duplicates, "ignored": out.Ignored,
		"out_of_scope": out.OutOfScope, "jobs": out.JobIDs,
	})
	return nil
}

// getDeliveries shows the notification outbox: counts by state and the
// deliveries in one state (?state=failed by default), newest first.
func (s *Server) getDeliveries(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Deliveries == nil {
		return apiErr(http.StatusNotFound, "not_found", "this server keeps no notification outbox")
	}
	state := r.URL.Query().Get("state")
	switch state {
	case "":
		state = store.DeliveryFailed
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return apiErr(http.StatusBadRequest, "bad_request", "state %q is not one of pending, delivered, failed", state)
	}
	counts, err := s.cfg.Deliveries.CountDeliveries(r.Context())
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store did not answer", Err: err}
	}
	list, err := s.cfg.Deliveries.ListDeliveries(r.Context(), state, 100)
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Message: "the store did not answer", Err: err}
	}
	writeJSON(w, http.StatusOK, map[string]any{"counts": counts, "state": state, "deliveries": list})
	return nil
}
