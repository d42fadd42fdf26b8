package redact

import "testing"

func TestURLs(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"amqp password", "amqp://user:secret@host:5672/", "amqp://user:xxxxx@host:5672/"},
		{"no password", "nats://a:4222", "nats://a:4222"},
		// NATS takes a comma-separated list: each URL is redacted, none lost.
		{"list", "nats://u:secret@a:4222, nats://b:4222", "nats://u:xxxxx@a:4222,nats://b:4222"},
		// A part that does not parse may hold a secret: it goes whole.
		{"unparseable", "amqp://u:secret@[::1", "<unparseable url>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLs(tt.in); got != tt.want {
				t.Errorf("URLs(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
