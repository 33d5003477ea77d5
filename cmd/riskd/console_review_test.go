package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/internal/apitest"
	"riskd/internal/kafkatest"
	"riskd/rules"
)

// Support works the review queue: a case opened by a review decision is
// listed, taken, looked at and closed with an outcome.
func TestConsoleReviewQueueTakeAndClose(t *testing.T) {
	e, d, b := consoleEnv(t)
	now := time.Now()
	if err := e.store.WriteDecisions(t.Context(), []*engine.Decision{{EventID: "console-review-1", AccountID: "acct-console-review",
		EventType: "payment", EventTS: now.UnixMilli(), DecidedAt: now, Action: rules.Review, Score: 60, Reason: "rule",
		Matched:        []engine.RuleHit{{RuleID: "new-payee-amount-spike", Action: rules.Review, Score: 60}},
		RuleSetVersion: "1-console", Raw: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleSupport])
	tab.Click("nav-review")
	if got := tab.WaitText("cases", "acct-console-review"); !strings.Contains(got, "new-payee-amount-spike") {
		t.Errorf("the case row does not name its rule:\n%s", got)
	}
	tab.Screenshot("review")
	tab.Click("case-take")
	tab.WaitText("case-status", "taken by support-token")
	tab.Select("case-outcome", "not_fraud")
	tab.Fill("case-note", "the customer confirmed the payee")
	tab.Screenshot("review-case")
	tab.Click("case-close")
	tab.WaitText("case-status", "closed")
	if got := tab.Text("case-status"); !strings.Contains(got, "not_fraud") {
		t.Errorf("case status %q, want the outcome", got)
	}
}

// An admin adds a paused webhook subscriber; an alert raised meanwhile is
// parked for it; the admin resumes it and re-sends the parked delivery,
// which the subscriber receives.
func TestConsoleAlertsParkedDeliveryResent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
	}))
	defer receiver.Close()
	e, d, b := consoleEnv(t)
	base := "http://" + d.httpAddr

	tab := b.Tab(t, base)
	tab.SignIn(apitest.Secrets[api.RoleAdmin])
	tab.Click("nav-alerts")
	tab.Fill("webhook-name", "crm")
	tab.Fill("webhook-url", receiver.URL)
	tab.Click("webhook-paused")
	tab.Click("webhook-add")
	tab.WaitText("webhook-secret", "crm")
	tab.WaitText("webhooks", "paused")

	kafkatest.Produce(t, e.addr, e.payments, ev("console-parked", "payment", "acct-console-parked", baseTS,
		`,"amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`))
	c := apitest.Client{T: t, Base: base}
	waitFor(t, waitLong, "the alert parked for the paused subscriber", func() (bool, string) {
		_, body := c.Do(api.RoleAdmin, "GET", "/v1/webhooks", nil)
		var res struct{ Webhooks []api.WebhookView }
		return json.Unmarshal(body, &res) == nil && len(res.Webhooks) == 1 && res.Webhooks[0].Parked > 0, string(body)
	})
	tab.Go("#/overview")
	tab.Go("#/alerts")
	tab.WaitTrue(`(document.querySelector('[data-test="webhook-parked"]')?.innerText ?? "0") !== "0"`, "a parked count")
	tab.Screenshot("alerts")
	tab.Click("webhook-pause") // resume
	tab.WaitText("webhook-pause", "Pause")
	tab.Click("webhook-parked")
	tab.WaitFor("parked-row")
	tab.Screenshot("alerts-parked")
	tab.Click("resend-all")
	tab.WaitFor("parked-empty")
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "console-parked") {
		t.Fatalf("the subscriber received %q, want the re-sent alert", got)
	}
}
