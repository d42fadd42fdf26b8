package api

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRole checks that only the three role names, exactly as
// written (no case folding, no white space), give a role; that a role
// prints as the name it was parsed from; and that anything else is
// RoleNone with an error quoting it.
func FuzzParseRole(f *testing.F) {
	for _, s := range []string{
		"read", "submit", "admin", "", "none", "Read", "ADMIN", " admin", "admin\n", "write", "reader", "adm",
		"0", "1", "3", "admin\x00", "ａdmin",
	} {
		f.Add(s)
	}
	known := map[string]Role{"read": RoleRead, "submit": RoleSubmit, "admin": RoleAdmin}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRole(s)
		want, ok := known[s]
		if !ok {
			if r != RoleNone || err == nil || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParseRole(%q) = %v, %v; want RoleNone and an error quoting the input", s, r, err)
			}
			return
		}
		if err != nil || r != want || r.String() != s {
			t.Fatalf("ParseRole(%q) = %v (%d), %v; want %v (%d)", s, r, r, err, want, want)
		}
		if again, err := ParseRole(r.String()); err != nil || again != r {
			t.Fatalf("ParseRole(%q.String()) = %v, %v; want %v", r, again, err, r)
		}
	})
}
