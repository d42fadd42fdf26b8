package clamd

import (
	"testing"
	"time"
)

func TestVersionDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"ClamAV 1.4.6/27480/Mon Nov 23 09:00:00 2026", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		{"ClamAV 1.4.6/27480/Tue Nov  3 09:00:00 2026", time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)},
		{"ClamAV 1.4.6", time.Time{}},
		{"ClamAV 1.4.6/27480", time.Time{}},
		{"ClamAV 1.4.6/27480/yesterday", time.Time{}},
	} {
		if got := versionDate(tc.in); !got.Equal(tc.want) {
			t.Errorf("versionDate(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
