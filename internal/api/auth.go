package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do. Each role includes the ones before it.
type Role int

// The roles.
const (
	RoleNone   Role = iota
	RoleRead        // GETs: jobs, verdicts, engines, metrics
	RoleSubmit      // + scans and uploads
	RoleAdmin       // + rescans and deletes
)

// ParseRole parses "read", "submit" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "submit":
		return RoleSubmit, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("role %q is not one of read, submit, admin", s)
}

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleSubmit:
		return "submit"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Token is one bearer token.
type Token struct {
	// Name identifies the token in logs; the value never appears there.
	Name  string
	Role  Role
	Value string
}

// tokens checks bearer tokens in constant time. Values are kept only as
// SHA-256 digests, so comparing digests leaks nothing about lengths.
type tokens struct {
	list []tokenDigest
}

type tokenDigest struct {
	name   string
	role   Role
	digest [32]byte
}

func newTokens(ts []Token) (*tokens, error) {
	t := &tokens{}
	for i, tk := range ts {
		if len(tk.Value) < 16 {
			return nil, fmt.Errorf("tokens[%d] (%s): a token must have at least 16 characters", i, tk.Name)
		}
		if tk.Role == RoleNone {
			return nil, fmt.Errorf("tokens[%d] (%s): role required", i, tk.Name)
		}
		t.list = append(t.list, tokenDigest{name: tk.Name, role: tk.Role, digest: sha256.Sum256([]byte(tk.Value))})
	}
	return t, nil
}

// enabled reports whether any token is configured.
func (t *tokens) enabled() bool { return len(t.list) > 0 }

// role returns the role of the request's bearer token (RoleNone if it has
// none or an unknown one) and the token's name.
func (t *tokens) role(r *http.Request) (Role, string) {
	h := r.Header.Get("Authorization")
	v, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || v == "" {
		return RoleNone, ""
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(v)))
	role, name := RoleNone, ""
	for _, tk := range t.list {
		// No early exit: every token is compared, whatever matches.
		if subtle.ConstantTimeCompare(d[:], tk.digest[:]) == 1 {
			role, name = tk.role, tk.name
		}
	}
	return role, name
}

// require wraps h so that it runs only for requests with at least role
// need. Without configured tokens every request passes: the server then
// listens only on loopback unless told otherwise (see serve).
func (s *Server) require(need Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokens.enabled() {
			h.ServeHTTP(w, r)
			return
		}
		got, _ := s.tokens.role(r)
		switch {
		case got == RoleNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="lazaret"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a bearer token is required", "code": "unauthorized"})
		case got < need:
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": fmt.Sprintf("this needs the %s role; the token has %s", need, got), "code": "forbidden"})
		default:
			h.ServeHTTP(w, r)
		}
	})
}
