package notify

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter checks parseRetryAfter, which reads a header a
// remote receiver controls:
//
//   - on any value and any clock (now = time.Unix(nowSec, 0)), the wait
//     is within [0, maxRetryAfterCap];
//   - surrounding white space does not change it;
//   - delay-seconds "secs" waits exactly secs seconds, 0 when secs is
//     not positive, the cap when it is larger;
//   - the HTTP date now+secs, in each of the three forms HTTP allows,
//     waits the same.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC).Unix()
	for _, v := range []string{
		"", "0", "-5", "7", " 7 ", "soon", "1.5", "99999999999999999999", "9999999999", "86400", "86401",
		"+7", "-0", "007", "Mon, 02 Mar 2026 12:00:30 GMT", "Mon, 02 Mar 2026 11:00:00 GMT",
		"Monday, 02-Mar-26 12:00:30 GMT", "Mon Mar  2 12:00:30 2026", "Fri, 31 Dec 9999 23:59:59 GMT",
		"Mon, 01 Jan 0001 00:00:00 GMT",
	} {
		f.Add(v, now, int64(30))
	}
	f.Add("7", int64(-1<<62), int64(-1<<62))
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(-1<<63), int64(1<<63-1))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", int64(1<<63-1), int64(86400))
	f.Add("", now, int64(86401))
	f.Fuzz(func(t *testing.T, v string, nowSec, secs int64) {
		anyNow := time.Unix(nowSec, 0)
		d := parseRetryAfter(v, anyNow)
		if d < 0 || d > maxRetryAfterCap {
			t.Fatalf("parseRetryAfter(%q, %s) = %s: out of [0, %s]", v, anyNow, d, maxRetryAfterCap)
		}
		if got := parseRetryAfter(" \t"+v+"\t ", anyNow); got != d {
			t.Fatalf("parseRetryAfter(%q) = %s, but %s with white space around it", v, d, got)
		}

		want := time.Duration(0)
		switch {
		case secs > int64(maxRetryAfterCap/time.Second):
			want = maxRetryAfterCap
		case secs > 0:
			want = time.Duration(secs) * time.Second
		}
		if got := parseRetryAfter(strconv.FormatInt(secs, 10), anyNow); got != want {
			t.Fatalf("parseRetryAfter(%q) = %s, want %s", strconv.FormatInt(secs, 10), got, want)
		}

		// Dates: a clock within 20 years of 2026 and a date within 10
		// years of it, so that RFC 850's two-digit year is unambiguous.
		const year = 365 * 24 * 60 * 60
		clock := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC).Add(time.Duration(nowSec%(20*year)) * time.Second)
		at := clock.Add(time.Duration(secs%(10*year)) * time.Second)
		want = min(max(at.Sub(clock), 0), maxRetryAfterCap)
		for _, date := range []string{
			at.Format(http.TimeFormat),
			strings.Replace(at.Format(time.RFC850), "UTC", "GMT", 1),
			at.Format(time.ANSIC),
		} {
			if got := parseRetryAfter(date, clock); got != want {
				t.Fatalf("parseRetryAfter(%q) at %s = %s, want %s", date, clock.Format(http.TimeFormat), got, want)
			}
		}
	})
}
