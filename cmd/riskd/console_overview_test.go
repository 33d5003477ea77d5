package main

import (
	"strings"
	"testing"

	"riskd/api"
	"riskd/bench/produce"
	"riskd/bench/traffic"
	"riskd/internal/apitest"
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
