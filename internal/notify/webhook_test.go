package notify

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// receiver is a webhook endpoint on a real HTTP server that answers with
// a script of statuses (the last one repeats) and records what it got.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	script []response
}

type response struct {
	status int
	header map[string]string
}

type recorded struct {
	at     time.Time
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, script ...response) *receiver {
	t.Helper()
	r := &receiver{t: t, script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, recorded{at: time.Now(), header: req.Header.Clone(), body: body})
		resp := response{status: http.StatusOK}
		if len(r.script) > 0 {
			resp = r.script[min(n, len(r.script)-1)]
		}
		r.mu.Unlock()
		for k, v := range resp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func newWebhook(t *testing.T, cfg WebhookConfig) *Webhook {
	t.Helper()
	w, err := NewWebhook(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// fast is a policy for tests: real backoff, tiny delays.
var fast = Policy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func TestDeliverHeadersAndSignature(t *testing.T) {
	const secret = "s3cr3t"
	rcv := newReceiver(t)
	w := newWebhook(t, WebhookConfig{Secret: secret})
	body := []byte(`{"event":"scan.completed","id":"j1"}`)
	d := NewDelivery(rcv.srv.URL+"/hook", EventScanCompleted, body)
	if err := w.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	for name, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   DefaultUserAgent,
		DeliveryHeader: d.ID,
		EventHeader:    EventScanCompleted,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if string(reqs[0].body) != string(body) {
		t.Errorf("body %q, want %q", reqs[0].body, body)
	}
	if sig := h.Get(SignatureHeader); !Verify([]byte(secret), reqs[0].body, sig) {
		t.Errorf("signature %q does not verify", sig)
	}
}

func TestDeliverUnsigned(t *testing.T) {
	rcv := newReceiver(t)
	w := newWebhook(t, WebhookConfig{UserAgent: "custom/2"})
	if err := w.Deliver(context.Background(), NewDelivery(rcv.srv.URL, EventScanCompleted, []byte("{}"))); err != nil {
		t.Fatal(err)
	}
	h := rcv.requests()[0].header
	if _, ok := h[SignatureHeader]; ok {
		t.Errorf("signature header %q sent without a secret", h.Get(SignatureHeader))
	}
	if got := h.Get("User-Agent"); got != "custom/2" {
		t.Errorf("User-Agent %q, want custom/2", got)
	}
}

func TestRetry500Then200(t *testing.T) {
	rcv := newReceiver(t, response{status: 500}, response{status: 502}, response{status: 200})
	w := newWebhook(t, WebhookConfig{Secret: "k"})
	d := NewDelivery(rcv.srv.URL, EventVerdictChanged, []byte(`{"a":1}`))
	if err := Retry(context.Background(), fast, w, &d, nil); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	reqs := rcv.requests()
	if len(reqs) != 3 || d.Attempt != 3 {
		t.Fatalf("receiver got %d requests, d.Attempt %d; want 3, 3", len(reqs), d.Attempt)
	}
	for i, r := range reqs {
		if got := r.header.Get(DeliveryHeader); got != d.ID {
			t.Errorf("attempt %d: delivery id %q, want %q (stable across retries)", i+1, got, d.ID)
		}
		if !Verify([]byte("k"), r.body, r.header.Get(SignatureHeader)) {
			t.Errorf("attempt %d: signature does not verify", i+1)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	rcv := newReceiver(t, response{status: 429, header: map[string]string{"Retry-After": "1"}}, response{status: 204})
	w := newWebhook(t, WebhookConfig{})
	d := NewDelivery(rcv.srv.URL, EventScanCompleted, []byte("{}"))
	if err := Retry(context.Background(), fast, w, &d, nil); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
		t.Errorf("retried after %s, want at least Retry-After's 1s", gap)
	}
}

func TestPermanentFailures(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 410, 413, 422} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			rcv := newReceiver(t, response{status: status})
			w := newWebhook(t, WebhookConfig{})
			d := NewDelivery(rcv.srv.URL, EventScanCompleted, []byte("{}"))
			err := Retry(context.Background(), fast, w, &d, nil)
			if !IsPermanent(err) {
				t.Fatalf("Retry: got %v, want a permanent error", err)
			}
			var de *DeliveryError
			if !errors.As(err, &de) || de.StatusCode != status {
				t.Errorf("error %v: want a *DeliveryError with status %d", err, status)
			}
			if n := len(rcv.requests()); n != 1 {
				t.Errorf("receiver got %d requests, want 1 (no retry)", n)
			}
		})
	}
}

func TestRetryableStatuses(t *testing.T) {
	for _, status := range []int{408, 425, 429, 500, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			rcv := newReceiver(t, response{status: status})
			w := newWebhook(t, WebhookConfig{})
			d := NewDelivery(rcv.srv.URL, EventScanCompleted, []byte("{}"))
			err := Retry(context.Background(), Policy{MaxAttempts: 3, BaseDelay: time.Millisecond}, w, &d, nil)
			if !errors.Is(err, ErrGaveUp) || IsPermanent(err) {
				t.Fatalf("Retry: got %v, want ErrGaveUp", err)
			}
			if n := len(rcv.requests()); n != 3 {
				t.Errorf("receiver got %d requests, want 3", n)
			}
		})
	}
}

// closedURL returns the URL of a port that was just listening and is now
// closed: connections to it are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/hook"
}

func TestReceiverDown(t *testing.T) {
	w := newWebhook(t, WebhookConfig{})
	d := NewDelivery(closedURL(t), EventScanCompleted, []byte("{}"))
	err := w.Deliver(context.Background(), d)
	if err == nil || IsPermanent(err) {
		t.Fatalf("Deliver to a closed port: got %v, want a retryable error", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("got %v, want ECONNREFUSED in the chain", err)
	}
	if !strings.Contains(err.Error(), d.ID) {
		t.Errorf("error %q does not name the delivery", err)
	}
}

func TestSlowReceiverTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	w := newWebhook(t, WebhookConfig{Timeout: 150 * time.Millisecond})
	start := time.Now()
	err := w.Deliver(context.Background(), NewDelivery(srv.URL, EventScanCompleted, []byte("{}")))
	if err == nil || IsPermanent(err) {
		t.Fatalf("Deliver to a slow receiver: got %v, want a retryable error", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Deliver took %s with a 150ms timeout", el)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("got %v, want a timeout", err)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	w := newWebhook(t, WebhookConfig{Secret: "k"})
	d := NewDelivery(srv.URL, EventScanCompleted, []byte("{}"))
	err := Retry(context.Background(), fast, w, &d, nil)
	if !IsPermanent(err) {
		t.Fatalf("got %v, want a permanent error", err)
	}
	var de *DeliveryError
	if !errors.As(err, &de) || de.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("got %v, want status 307", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

// TestHostileResponseBodies: a receiver that answers with an endless body
// must not make us read it all, whatever its status.
func TestHostileResponseBodies(t *testing.T) {
	for _, status := range []int{200, 500} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var written atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				chunk := make([]byte, 32<<10)
				for written.Load() < 1<<30 {
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			w := newWebhook(t, WebhookConfig{MaxResponseBytes: 64 << 10, Timeout: 5 * time.Second})
			start := time.Now()
			err := w.Deliver(context.Background(), NewDelivery(srv.URL, EventScanCompleted, []byte("{}")))
			if got := err == nil; got != (status == 200) {
				t.Errorf("Deliver: %v", err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Deliver took %s", el)
			}
			srv.CloseClientConnections()
			// Socket buffers take a few MiB; reading it all would be 1 GiB.
			if n := written.Load(); n > 64<<20 {
				t.Errorf("receiver wrote %d bytes before we hung up", n)
			}
		})
	}
}

func TestContextCancelStopsRetry(t *testing.T) {
	rcv := newReceiver(t, response{status: 503})
	w := newWebhook(t, WebhookConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDelivery(rcv.srv.URL, EventScanCompleted, []byte("{}"))
	done := make(chan error, 1)
	go func() {
		done <- Retry(ctx, Policy{MaxAttempts: 100, BaseDelay: time.Hour}, w, &d, nil)
	}()
	// Wait for the first attempt, then cancel during the backoff.
	for deadline := time.Now().Add(5 * time.Second); len(rcv.requests()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no attempt made")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry did not stop after cancel")
	}
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

func TestContextCancelDuringAttempt(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	w := newWebhook(t, WebhookConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDelivery(srv.URL, EventScanCompleted, []byte("{}"))
	done := make(chan error, 1)
	go func() { done <- Retry(ctx, fast, w, &d, nil) }()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry did not stop after cancel")
	}
	if d.Attempt != 1 {
		t.Errorf("d.Attempt = %d, want 1", d.Attempt)
	}
}

func TestErrorsRedactURL(t *testing.T) {
	u := strings.Replace(closedURL(t), "http://", "http://alice:hunter2@", 1) + "?token=tok3n&x=1"
	w := newWebhook(t, WebhookConfig{Secret: "topsecret"})
	err := w.Deliver(context.Background(), NewDelivery(u, EventScanCompleted, []byte("{}")))
	if err == nil {
		t.Fatal("no error")
	}
	for _, leak := range []string{"hunter2", "tok3n", "alice", "topsecret"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows %q", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q does not name the host", err)
	}
}

func TestInvalidURLs(t *testing.T) {
	w := newWebhook(t, WebhookConfig{})
	for _, u := range []string{"ftp://example.com/x", "/relative", "http://", "http://a b/", ":nope", "http://user:pa ss@h/%zz"} {
		err := w.Deliver(context.Background(), NewDelivery(u, EventScanCompleted, nil))
		if !IsPermanent(err) {
			t.Errorf("Deliver(%q): got %v, want a permanent error", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "pa ss") {
			t.Errorf("error %q shows the password", err)
		}
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewDelivery(srv.URL, EventScanCompleted, []byte("{}"))

	t.Run("system CAs refuse it", func(t *testing.T) {
		err := newWebhook(t, WebhookConfig{}).Deliver(context.Background(), d)
		if err == nil {
			t.Fatal("delivered to a server with an unknown CA")
		}
	})
	t.Run("ca file", func(t *testing.T) {
		if err := newWebhook(t, WebhookConfig{CAFile: caFile}).Deliver(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		if err := newWebhook(t, WebhookConfig{InsecureSkipVerify: true}).Deliver(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad ca files", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk.pem")
		_ = os.WriteFile(junk, []byte("not a certificate"), 0o600)
		for _, f := range []string{junk, filepath.Join(t.TempDir(), "missing.pem")} {
			if _, err := NewWebhook(WebhookConfig{CAFile: f}, nil); err == nil {
				t.Errorf("NewWebhook(CAFile: %s): no error", f)
			}
		}
	})
}
