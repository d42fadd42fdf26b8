// Package redact hides credentials in broker URLs before they reach logs
// and error messages.
package redact

import (
	"net/url"
	"strings"
)

// URLs returns s, one URL or a comma-separated list of them (NATS takes
// several servers), with each URL's password replaced by "xxxxx" (see
// url.URL.Redacted). A part that does not parse is replaced whole, since
// it may hold a secret too.
func URLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "<unparseable url>"
		}
	}
	return strings.Join(parts, ",")
}
