// Package statuswriter notes the status an HTTP handler answered with, for
// metrics, without hiding what the writer underneath can do: ReadFrom
// passes through (net/http sends files with sendfile) and Unwrap serves
// http.ResponseController.
package statuswriter

import (
	"io"
	"net/http"
)

// Writer wraps an http.ResponseWriter and notes the first status written.
type Writer struct {
	http.ResponseWriter
	code int
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

// Status is the status answered: 200 when the handler wrote a body without
// a header, or wrote nothing at all (net/http then answers 200).
func (w *Writer) Status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// WriteHeader notes code and passes it on.
func (w *Writer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write passes p on; a body without a header is a 200.
func (w *Writer) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom lets the writer underneath copy r its own way (sendfile).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
