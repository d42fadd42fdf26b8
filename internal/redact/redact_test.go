package redact

import "testing"

func TestURLs(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"amqp password", "amqp://user:secret@host:5672/", "amqp://REDACTED@host:5672/"},
		{"no password", "nats://a:4222", "nats://a:4222"},
		{"nats token", "nats://s3cr3t@a:4222", "nats://REDACTED@a:4222"},
		{"list", "nats://u:secret@a:4222, nats://b:4222", "nats://REDACTED@a:4222,nats://b:4222"},
		{"unparseable", "amqp://u:secret@[::1", Unparseable},
		{"plain", "https://h.example/hook", "https://h.example/hook"},
		{"webhook user", "https://u:p@h.example/hook", "https://REDACTED@h.example/hook"},
		{"webhook token user", "https://tok@h.example/hook", "https://REDACTED@h.example/hook"},
		{"query and fragment", "https://h.example/hook?token=abc&b=2#frag", "https://h.example/hook?b=REDACTED&token=REDACTED"},
		{"bad", "::bad", Unparseable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLs(tt.in); got != tt.want {
				t.Errorf("URLs(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestURLKeepsCommas: one URL is not split at its commas, which would
// leave the part after one unredacted.
func TestURLKeepsCommas(t *testing.T) {
	in, want := "https://h.example/hook?token=a,b", "https://h.example/hook?token=REDACTED"
	if got := URL(in); got != want {
		t.Errorf("URL(%q): got %q, want %q", in, got, want)
	}
}
