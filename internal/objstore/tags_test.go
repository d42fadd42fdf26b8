package objstore

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// userTags returns n user tags u0..u(n-1).
func userTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("u%d", i)] = fmt.Sprintf("v%d", i)
	}
	return m
}

func with(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestMergeTags(t *testing.T) {
	const status = "lazaret-status"
	infected := []Tag{
		{status, "infected"},
		{"lazaret-signature", "Eicar-Test-Signature"},
		{"lazaret-scanned-at", "2026-11-23T10:00:00Z"},
	}
	clean := []Tag{
		{status, "clean"},
		{"lazaret-signature", ""},
		{"lazaret-scanned-at", "2026-11-23T10:00:00Z"},
	}
	all := func(m map[string]string) map[string]string {
		return with(m, status, "infected", "lazaret-signature", "Eicar-Test-Signature", "lazaret-scanned-at", "2026-11-23T10:00:00Z")
	}
	tests := []struct {
		name     string
		existing map[string]string
		ours     []Tag
		want     map[string]string
		wantErr  error
	}{
		{"no tags", nil, infected, all(nil), nil},
		{"three user tags kept", userTags(3), infected, all(userTags(3)), nil},
		{"seven user tags: all fit", userTags(7), infected, all(userTags(7)), nil},
		{"eight user tags: scanned-at dropped", userTags(8), infected,
			with(userTags(8), status, "infected", "lazaret-signature", "Eicar-Test-Signature"), nil},
		{"nine user tags: status alone", userTags(9), infected,
			with(userTags(9), status, "infected"), nil},
		{"ten user tags: no room", userTags(10), infected, nil, ErrTagBudget},
		{"eight user tags, clean: status and time", userTags(8), clean,
			with(userTags(8), status, "clean", "lazaret-scanned-at", "2026-11-23T10:00:00Z"), nil},
		{"earlier verdict replaced, stale signature removed",
			with(userTags(2), status, "infected", "lazaret-signature", "Old", "lazaret-scanned-at", "2020-01-01T00:00:00Z"),
			clean, with(userTags(2), status, "clean", "lazaret-scanned-at", "2026-11-23T10:00:00Z"), nil},
		{"nine user tags and our old status: status replaced",
			with(userTags(9), status, "pending"), infected, with(userTags(9), status, "infected"), nil},
		{"same set again: unchanged", all(userTags(3)), infected, all(userTags(3)), nil},
		{"status key of bucket-av-scanner", userTags(1), []Tag{{"scanned", "clean"}},
			with(userTags(1), "scanned", "clean"), nil},
		{"status listed last still comes first", userTags(9),
			[]Tag{{"lazaret-signature", "X"}, {status, "infected"}}, with(userTags(9), status, "infected"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.existing)
			got, err := MergeTags(tt.existing, tt.ours, status)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if len(got) > MaxTags {
				t.Errorf("got %d tags, S3 allows %d", len(got), MaxTags)
			}
			if !maps.Equal(tt.existing, before) {
				t.Errorf("MergeTags modified its input: %v, was %v", tt.existing, before)
			}
		})
	}
}

func TestSanitizeTagValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Eicar-Test-Signature", "Eicar-Test-Signature"},
		{"Eicar-Test-Signature.UNOFFICIAL", "Eicar-Test-Signature.UNOFFICIAL"},
		{"Win.Trojan.Agent-123 (heur)", "Win.Trojan.Agent-123 _heur_"},
		{"a+b=c_d:e/f@g h", "a+b=c_d:e/f@g h"},
		{"YARA!rule#1,x;y", "YARA_rule_1_x_y"},
		{"Éicar\tbad\n", "_icar_bad_"},
		{"  padded  ", "padded"},
		{"", ""},
		{"   ", ""},
		{"\xff\xfe", "__"},
		{strings.Repeat("x", 300), strings.Repeat("x", 256)},
		{strings.Repeat("é", 300), strings.Repeat("_", 256)},
	}
	for _, tt := range tests {
		if got := SanitizeTagValue(tt.in); got != tt.want {
			t.Errorf("SanitizeTagValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := SanitizeTagValue(tt.in); got != "" && !validTagText(got) {
			t.Errorf("SanitizeTagValue(%q) = %q, not a valid tag value", tt.in, got)
		}
	}
}
