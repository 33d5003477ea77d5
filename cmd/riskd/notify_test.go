package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/streams/notify"
)

// TestAlertsReachSignedWebhooksAndTheLiveStream: a scam-payee payment on
// Kafka produces an alert that a webhook subscriber receives signed (and
// verifiable with the documented recipe) and that a viewer's live stream
// shows.
func TestAlertsReachSignedWebhooksAndTheLiveStream(t *testing.T) {
	const secret = "whsec-test-0123456789"
	var mu sync.Mutex
	var got []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get(notify.HeaderEvent)+" "+string(body))
		mu.Unlock()
	}))
	defer receiver.Close()

	e := newTestEnv(t)
	t.Setenv("RISKD_TEST_WEBHOOK_SECRET", secret)
	e.cfg.Notify.Webhooks = []WebhookConfig{{Name: "wallet-notifier", URL: receiver.URL, SecretEnv: "RISKD_TEST_WEBHOOK_SECRET"}}
	_, c := startAPI(t, e)

	// A viewer watches the live stream from before the alert.
	resp := openAlertStream(t, c)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	kafkatest.Produce(t, e.broker.Addr(), "payments", ev("scam-wh", "payment", "acct-wh", baseTS,
		`,"amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`))

	deadline := time.After(waitLong)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the live stream ended")
			}
			if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, `"scam-wh"`) {
				continue
			}
			// The webhook got it too, signed.
			for {
				mu.Lock()
				n := len(got)
				var first string
				if n > 0 {
					first = got[0]
				}
				mu.Unlock()
				if n > 0 {
					if !strings.HasPrefix(first, notify.KindAlert+" ") || !strings.Contains(first, `"rule_id":"scam-payee"`) {
						t.Fatalf("webhook delivery: %s", first)
					}
					return
				}
				select {
				case <-deadline:
					t.Fatal("the webhook subscriber never received the alert")
				case <-time.After(50 * time.Millisecond):
				}
			}
		case <-deadline:
			t.Fatal("the live stream never showed the alert")
		}
	}
}

// openAlertStream opens the live alert stream as a viewer and checks that
// it is one; the body is closed when the test ends.
func openAlertStream(t *testing.T, c apitest.Client) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", c.Base+"/v1/alerts/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apitest.Secrets[api.RoleViewer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("alert stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}
