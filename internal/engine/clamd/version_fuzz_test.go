package clamd

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// versionLayout is how clamd writes its database date in VERSION.
const versionLayout = "Mon Jan _2 15:04:05 2006"

// FuzzParseVersion checks trimVersion and versionDate on any VERSION
// reply s, and on the reply clamd would write for version ver, database
// db and date unix (seconds, taken within years 1 to 9999):
//
//   - trimVersion keeps s up to its second '/' (all of it when there is
//     none), and trimming again changes nothing;
//   - versionDate is zero unless s has a second '/', and then it is the
//     date the text after that '/' holds, if any;
//   - the reply clamd writes gives back "ClamAV ver/db" and the date.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{
		"ClamAV 1.4.6/27480/Mon Nov 23 09:00:00 2026", "ClamAV 1.4.6", "ClamAV 1.4.6/27480", "", "/", "//", "a/b/",
		"ClamAV 1.0.0/1/Tue Feb  3 04:05:06 2015", "ClamAV 1.0.0/1/Tue Feb 3 04:05:06 2015", "x/y/ Mon Nov 23 09:00:00 2026 ",
		"x/y/Mon Nov 23 09:00:00 2026/extra", "x/y/Fri Nov 23 09:00:00 2026", "x/y/Mon Nov 31 09:00:00 2026",
		"x/y/Mon Nov 23 24:00:00 2026", "x/y/Mon Nov 23 09:00:00 0000", "ClamAV 1.4.6/27480/Mon Nov 23 09:00:00 2026\x00",
	} {
		f.Add(s, "1.4.6", uint32(27480), int64(1795424400))
	}
	f.Add("", "", uint32(0), int64(-62135596800)) // 0001-01-01
	f.Add("", "0.103.12", uint32(1<<32-1), int64(253402300799))
	f.Add("", "1.5.0-rc", uint32(1), int64(-1))
	f.Fuzz(func(t *testing.T, s, ver string, db uint32, unix int64) {
		got := trimVersion(s)
		want := s
		if i := strings.IndexByte(s, '/'); i >= 0 {
			if j := strings.IndexByte(s[i+1:], '/'); j >= 0 {
				want = s[:i+1+j]
			}
		}
		if got != want || trimVersion(got) != got {
			t.Fatalf("trimVersion(%q) = %q (trimmed again %q), want %q", s, got, trimVersion(got), want)
		}
		d := versionDate(s)
		if got == s {
			if !d.IsZero() {
				t.Fatalf("versionDate(%q) = %v, want zero: there is no second '/'", s, d)
			}
		} else {
			// The weekday is not checked (time.Parse reads it and
			// ignores it), nor need the spacing be clamd's.
			rest := s[len(got)+1:]
			if want, err := time.Parse(versionLayout, strings.TrimSpace(rest)); err == nil && !d.Equal(want) || err != nil && !d.IsZero() {
				t.Fatalf("versionDate(%q) = %v, want the date in %q (%v, %v)", s, d, rest, want, err)
			}
		}

		// What clamd writes: its version has no '/'.
		ver = strings.ReplaceAll(ver, "/", "")
		const minUnix, maxUnix = -62135596800, 253402300799 // years 1 to 9999
		when := time.Unix(minUnix+int64(uint64(unix-minUnix)%(maxUnix-minUnix+1)), 0).UTC()
		reply := "ClamAV " + ver + "/" + strconv.FormatUint(uint64(db), 10) + "/" + when.Format(versionLayout)
		if got, want := trimVersion(reply), "ClamAV "+ver+"/"+strconv.FormatUint(uint64(db), 10); got != want {
			t.Fatalf("trimVersion(%q) = %q, want %q", reply, got, want)
		}
		if got := versionDate(reply); !got.Equal(when) {
			t.Fatalf("versionDate(%q) = %v, want %v", reply, got, when)
		}
	})
}
