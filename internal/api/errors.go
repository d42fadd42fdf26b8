package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
)

// Error is an API error: a status, a stable machine-readable code and a
// message for people. Handlers return it; the adapter writes it as
// {"error": message, "code": code}.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error // logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func apiErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// handlerFunc is an HTTP handler that returns its error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc: errors become JSON with a fitting status.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ae *Error
		if !errors.As(err, &ae) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				ae = apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit of %d bytes", mbe.Limit)
			} else {
				ae = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
			}
		}
		if ae.Status >= 500 {
			s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", ae.Status), slog.String("error", ae.Error()))
		}
		writeJSON(w, ae.Status, map[string]string{"error": ae.Message, "code": ae.Code})
	}
}

// jsonBufs holds encoding buffers: an answer encoded whole goes out with a
// Content-Length in one write, not as chunks.
var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // a huge job list is not kept around
			buf.Reset()
			jsonBufs.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"the answer could not be encoded","code":"internal"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
