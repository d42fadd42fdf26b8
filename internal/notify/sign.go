// Package notify tells the systems that care about a scan result: it
// builds the webhook payload (the job JSON with an "event" field), signs
// it, delivers it over HTTP, and retries deliveries that fail for reasons
// that may pass.
//
// The pieces are separate so that a durable outbox can sit between them:
// Payload and NewDelivery build a Delivery, a plain struct a store row can
// hold; Webhook.Deliver makes one attempt; Retry (or a store-driven loop
// using Policy.Next) decides whether and when to try again. A delivery's
// ID never changes across attempts, so receivers can deduplicate.
//
// Receivers check X-Lazaret-Signature with Verify.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
)

// Header names on every delivery.
const (
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when
	// a secret is set.
	SignatureHeader = "X-Lazaret-Signature"
	// DeliveryHeader carries the delivery's ID, the same on every attempt.
	DeliveryHeader = "X-Lazaret-Delivery"
	// EventHeader carries the event name, as in the body's "event" field.
	EventHeader = "X-Lazaret-Event"
)

// signaturePrefix names the algorithm, GitHub-style, so that another one
// can be added without breaking receivers that check the prefix.
const signaturePrefix = "sha256="

// Signer signs delivery bodies with a shared secret. Its zero value has no
// secret and signs nothing. It never prints its secret.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer for secret. An empty secret gives a Signer
// that does not sign.
func NewSigner(secret string) Signer {
	if secret == "" {
		return Signer{}
	}
	return Signer{secret: []byte(secret)}
}

// Enabled reports whether the Signer has a secret.
func (s Signer) Enabled() bool { return len(s.secret) > 0 }

// Sign returns the SignatureHeader value for body, or "" when the Signer
// has no secret.
func (s Signer) Sign(body []byte) string {
	if !s.Enabled() {
		return ""
	}
	return signaturePrefix + hex.EncodeToString(mac(s.secret, body))
}

// String hides the secret from fmt.
func (s Signer) String() string {
	if s.Enabled() {
		return "notify.Signer(<secret>)"
	}
	return "notify.Signer(none)"
}

// GoString hides the secret from %#v.
func (s Signer) GoString() string { return s.String() }

// LogValue hides the secret from slog.
func (s Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Verify reports whether header is a valid SignatureHeader value for body
// under secret. The MAC comparison is constant-time. An empty secret never
// verifies: a receiver that has no secret has nothing to check against.
func Verify(secret, body []byte, header string) bool {
	if len(secret) == 0 {
		return false
	}
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, mac(secret, body))
}

func mac(secret, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return h.Sum(nil)
}
