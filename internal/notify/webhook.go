package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/redact"
)

// Defaults for WebhookConfig.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultUserAgent        = "lazaret-webhook/1"
	DefaultMaxResponseBytes = 64 << 10
)

// WebhookConfig configures a Webhook. The zero value is usable: no
// signature, default timeout and user agent, the system's CAs.
type WebhookConfig struct {
	// Secret signs bodies (SignatureHeader) when set. It never appears in
	// String, logs or errors.
	Secret string
	// Timeout bounds one attempt from dial to the end of the response;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent on every request; "" means DefaultUserAgent.
	UserAgent string
	// CAFile is a PEM file of the CAs to trust instead of the system's,
	// for a receiver with a private CA.
	CAFile string
	// InsecureSkipVerify turns off TLS certificate checks. For tests and
	// emergencies only; NewWebhook logs a warning when it is set.
	InsecureSkipVerify bool
	// MaxResponseBytes is how much of a response body is read (and
	// discarded) so the connection can be reused; 0 means
	// DefaultMaxResponseBytes. A receiver sending more is cut off.
	MaxResponseBytes int64
}

// String shows the configuration with the secret hidden.
func (c WebhookConfig) String() string {
	secret := ""
	if c.Secret != "" {
		secret = "<secret>"
	}
	return fmt.Sprintf("{Secret:%s Timeout:%s UserAgent:%q CAFile:%q InsecureSkipVerify:%t MaxResponseBytes:%d}",
		secret, c.Timeout, c.UserAgent, c.CAFile, c.InsecureSkipVerify, c.MaxResponseBytes)
}

// GoString hides the secret from %#v.
func (c WebhookConfig) GoString() string { return "notify.WebhookConfig" + c.String() }

// LogValue hides the secret from slog.
func (c WebhookConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Deliverer makes one delivery attempt. Webhook is one; tests and other
// transports can be others.
type Deliverer interface {
	Deliver(ctx context.Context, d Delivery) error
}

// Webhook delivers notifications by HTTP POST. It is safe for concurrent
// use.
type Webhook struct {
	client    *http.Client
	transport *http.Transport
	signer    Signer
	userAgent string
	maxResp   int64
}

var _ Deliverer = (*Webhook)(nil)

// NewWebhook returns a Webhook for cfg. It fails if CAFile cannot be read
// or holds no certificate.
func NewWebhook(cfg WebhookConfig, log *slog.Logger) (*Webhook, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("notify: webhook: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify: webhook: ca file %s: no PEM certificate", cfg.CAFile)
		}
		// Replace the system pool rather than add to it: a private CA
		// names exactly who may receive results.
		tlsCfg.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		tlsCfg.InsecureSkipVerify = true
		log.Warn("webhook TLS certificate verification is off", "setting", "insecure_skip_verify")
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		// Receivers' answers are discarded; a compressed one would only
		// cost CPU to inflate.
		DisableCompression: true,
	}
	return &Webhook{
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect is not followed: it would carry a signed
			// result to a place nobody configured. It is reported as
			// a permanent failure instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: tr,
		signer:    NewSigner(cfg.Secret),
		userAgent: cfg.UserAgent,
		maxResp:   cfg.MaxResponseBytes,
	}, nil
}

// Close releases idle connections.
func (w *Webhook) Close() { w.transport.CloseIdleConnections() }

// Deliver makes one attempt to POST d.Body to d.URL. It returns nil when
// the receiver answers 2xx, and otherwise a *DeliveryError that says
// whether trying again may help (see IsPermanent and RetryAfterOf).
func (w *Webhook) Deliver(ctx context.Context, d Delivery) error {
	u, err := url.Parse(d.URL)
	if err != nil {
		// url.Parse's error quotes the URL, credentials and all.
		return &DeliveryError{ID: d.ID, URL: redact.Unparseable, Permanent: true, Err: errors.New("invalid URL")}
	}
	fail := func(e *DeliveryError) *DeliveryError {
		e.ID, e.URL = d.ID, redact.Parsed(u)
		return e
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fail(&DeliveryError{Permanent: true, Err: errors.New("URL scheme must be http or https, with a host")})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(d.Body))
	if err != nil {
		return fail(&DeliveryError{Permanent: true, Err: errors.New("cannot build request")})
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.userAgent)
	req.Header.Set(DeliveryHeader, d.ID)
	req.Header.Set(EventHeader, d.Event)
	if sig := w.signer.Sign(d.Body); sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}

	resp, err := w.client.Do(req)
	if err != nil {
		// The transport's *url.Error repeats the URL (query and all);
		// keep only its cause, the URL is in the DeliveryError redacted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// Our caller gave up: say so, so that the retry loop
			// stops rather than blaming the receiver.
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return fail(&DeliveryError{Err: err})
	}
	// Read a bounded part of the body so the connection can be reused,
	// and drop it: a receiver's answer is not ours to keep or log.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, w.maxResp))
	_ = resp.Body.Close()

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return fail(&DeliveryError{StatusCode: code, Permanent: true,
			Err: errors.New("redirect not followed")})
	case retryableStatus(code):
		return fail(&DeliveryError{StatusCode: code, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Err: errors.New(http.StatusText(code))})
	}
	return fail(&DeliveryError{StatusCode: code, Permanent: true, Err: errors.New(http.StatusText(code))})
}

// retryableStatus reports whether an HTTP status means "try again later":
// request timeout, too early, too many requests, or any server error.
// Other 4xx say the request itself is wrong, and repeating it cannot help.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code < 600
}

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP
// date, and returns 0 when it is absent, invalid or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap before converting so a huge value cannot overflow.
		if secs > int64(maxRetryAfterCap/time.Second) {
			return maxRetryAfterCap
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfterCap)
		}
	}
	return 0
}

// maxRetryAfterCap bounds any Retry-After we parse; Policy applies its own,
// usually smaller, limit.
const maxRetryAfterCap = 24 * time.Hour

// DeliveryError is a failed delivery attempt.
type DeliveryError struct {
	// ID is the delivery's ID.
	ID string
	// URL is the receiver's URL with credentials and query values
	// redacted.
	URL string
	// StatusCode is the receiver's HTTP status, 0 if there was no answer.
	StatusCode int
	// Permanent says that trying again cannot help: a 4xx other than
	// 408, 425 and 429, a redirect, an invalid URL.
	Permanent bool
	// RetryAfter is the receiver's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
	// Err is the cause.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("notify: deliver %s to %s: HTTP %d: %v", e.ID, e.URL, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("notify: deliver %s to %s: %v", e.ID, e.URL, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// IsPermanent reports whether err says a delivery can never succeed as it
// is, so retrying is pointless.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// RetryAfterOf returns the receiver's Retry-After carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	return 0
}
