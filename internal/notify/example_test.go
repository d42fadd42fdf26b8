package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lazaret/lazaret/internal/notify"
	"github.com/lazaret/lazaret/internal/scan"
)

// A receiver checks the signature over the raw body before trusting it,
// and uses X-Lazaret-Delivery to drop repeats.
func ExampleVerify() {
	secret := []byte("shared-secret")
	seen := map[string]bool{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !notify.Verify(secret, body, r.Header.Get(notify.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get(notify.DeliveryHeader); !seen[id] {
			seen[id] = true
			fmt.Println("got", r.Header.Get(notify.EventHeader))
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()

	job := &scan.Job{ID: "j1", Status: scan.Done, Verdict: scan.Infected}
	if !notify.ShouldSend(job, false) {
		return
	}
	body, err := notify.Payload(notify.EventScanCompleted, job)
	if err != nil {
		fmt.Println(err)
		return
	}
	wh, err := notify.NewWebhook(notify.WebhookConfig{Secret: string(secret)}, slog.Default())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer wh.Close()
	d := notify.NewDelivery(srv.URL, notify.EventScanCompleted, body)
	err = notify.Retry(context.Background(), notify.Policy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}, wh, &d, nil)
	fmt.Println(err, d.Attempt)
	// Output:
	// got scan.completed
	// <nil> 1
}
