// Package redact hides credentials in URLs (brokers, webhooks, upstreams)
// before they reach logs, errors and the API.
package redact

import (
	"net/url"
	"strings"
)

// Unparseable stands for a URL that does not parse: it is hidden whole,
// since it may hold a secret too.
const Unparseable = "<unparseable url>"

// URL returns raw with what may be a secret hidden: the whole user info
// (a password, but also a user name alone, which is how NATS takes a
// token and webhooks often carry one), every query value (webhook tokens),
// and the fragment.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Unparseable
	}
	return Parsed(u)
}

// URLs is URL for s, one URL or a comma-separated list of them (NATS
// takes several servers).
func URLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = URL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// Parsed is URL for a parsed URL; u is not changed.
func Parsed(u *url.URL) string {
	r := *u
	if r.User != nil {
		r.User = url.User("REDACTED")
	}
	if r.RawQuery != "" {
		q := r.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		r.RawQuery = q.Encode()
	}
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}
