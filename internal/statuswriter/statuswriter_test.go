package statuswriter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name string
		h    func(w http.ResponseWriter)
		want int
	}{
		{"nothing", func(http.ResponseWriter) {}, 200},
		{"body only", func(w http.ResponseWriter) { io.WriteString(w, "x") }, 200},
		{"header", func(w http.ResponseWriter) { w.WriteHeader(409) }, 409},
		{"first header wins", func(w http.ResponseWriter) { w.WriteHeader(503); w.WriteHeader(200) }, 503},
		{"read from", func(w http.ResponseWriter) { w.(io.ReaderFrom).ReadFrom(strings.NewReader("x")) }, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sw := New(rec)
			tt.h(sw)
			if got := sw.Status(); got != tt.want {
				t.Errorf("Status() = %d, want %d", got, tt.want)
			}
			if http.NewResponseController(sw).Flush() != nil {
				t.Error("the controller does not reach the writer underneath")
			}
		})
	}
}
