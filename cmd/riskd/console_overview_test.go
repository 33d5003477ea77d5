package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/internal/apitest"
	"riskd/internal/browsertest"
	"riskd/internal/kafkatest"
)

// A viewer opens the overview: the last hour's decisions per minute by
// action, the top rules and the counters, each linked to the list behind
// it; an alert raised while the page is open appears in its live feed.
func TestConsoleOverviewShowsTheHourAndAnAlertLive(t *testing.T) {
	e, d, b := consoleEnv(t)
	e.produce(t, produce.Config{Events: 600,
		Traffic: traffic.Config{Accounts: 200, Seed: 11, FraudRate: 0.05, IDPrefix: "ov-"}})
	e.waitStored(t, 600)

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleViewer])
	tab.Go("#/overview")
	tab.WaitFor("chart")
	tab.WaitFor("top-rule")
	if got := tab.Text("figure-allow"); got == "" {
		t.Fatal("no allow figure")
	}
	href := tab.Attr("figure-block", "href")
	if href != "#/decisions?action=block" {
		t.Errorf("the block figure links to %q, want the decisions of that action", href)
	}
	tab.WaitText("live-status", "live")

	// A payment to a known scam payee raises an alert.
	kafkatest.Produce(t, e.addr, e.payments, ev("console-scam", "payment", "acct-console-live", baseTS,
		`,"amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`))
	tab.WaitText("live-feed", "acct-console-live")
	if got := tab.Text("live-feed"); !strings.Contains(got, "scam-payee") {
		t.Errorf("the live feed shows %q, want the scam-payee alert", got)
	}
	tab.Screenshot("overview")

	// The figure leads to the list behind it.
	tab.Click("figure-block")
	tab.WaitFor("decision-row")
	tab.Screenshot("decisions")
}

// Every figure of the overview leads to the list behind it, for a viewer:
// late events to the late decisions, alerts to the alerts raised (each
// linked to its account), the DLQ to the dead letters with their reason
// and payload, the lag to the input partitions. An admin reaches the
// subscribers from the alerts raised.
func TestConsoleFiguresLeadToTheirLists(t *testing.T) {
	e, d, b := consoleEnv(t)
	pay := `,"amount":40,"currency":"EUR","channel":"transfer","payee_id":"payee-0001"`
	kafkatest.Produce(t, e.addr, e.payments,
		// An hour behind the account's latest event: late for its windows.
		ev("console-late-a", "payment", "acct-console-late", baseTS+3_600_000, pay),
		ev("console-late-b", "payment", "acct-console-late", baseTS, pay),
		ev("console-scam-2", "payment", "acct-console-alert", baseTS, `,"amount":25000,"currency":"EUR","channel":"transfer","payee_id":"payee-scam-0002"`),
		// Not JSON: it goes to the dead-letter topic.
		kafka.Message{Key: []byte("acct-console-dlq"), Value: []byte(`{"event_id":"console-bad","type":<b>payment`)})

	// The lists are read once a page opens: wait until the API has each row.
	c := apitest.Client{T: t, Base: "http://" + d.httpAddr}
	for path, want := range map[string]string{
		"/v1/decisions?late=true": "console-late-b",
		"/v1/alerts":              "acct-console-alert",
		"/v1/dlq":                 "console-bad",
	} {
		waitFor(t, browsertest.WaitBudget, "GET "+path+" shows "+want, func() (bool, string) {
			code, body := c.Do(api.RoleViewer, "GET", path, nil)
			return code == 200 && strings.Contains(string(body), want), fmt.Sprintf("%d %.300s", code, body)
		})
	}

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleViewer])
	for _, fig := range []struct{ figure, href, row, list, want, shot string }{
		{"figure-late", "#/decisions?late=true", "decision-late", "decisions-list", "console-late-b", "decisions-late"},
		{"figure-alerts", "#/raised", "raised-row", "raised-list", "acct-console-alert", "raised"},
		{"figure-dlq", "#/dlq", "dlq-row", "dlq-list", "console-bad", "dlq"},
		{"figure-lag", "#/pipeline", "pipeline-row", "pipeline-list", e.payments, "pipeline"},
	} {
		tab.Go("#/overview")
		tab.WaitFor("chart")
		if got := tab.Attr(fig.figure, "href"); got != fig.href {
			t.Errorf("%s links to %q, want %q", fig.figure, got, fig.href)
		}
		tab.Click(fig.figure)
		tab.WaitFor(fig.row)
		tab.WaitText(fig.list, fig.want)
		tab.Screenshot(fig.shot)
	}
	tab.Go("#/dlq")
	if got := tab.WaitText("dlq-payload", "console-bad"); got != `{"event_id":"console-bad","type":<b>payment` {
		t.Errorf("the dead letter's payload shows %q, want the bytes as text", got)
	}
	if tab.Present("raised-subscribers") {
		t.Error("the viewer is offered the subscribers")
	}

	admin := b.Tab(t, "http://"+d.httpAddr)
	admin.SignIn(apitest.Secrets[api.RoleAdmin])
	admin.Go("#/raised")
	admin.WaitText("raised-row", "acct-console-alert")
	admin.Click("raised-subscribers")
	admin.WaitFor("webhooks")
}
