package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"riskd/api"
	"riskd/internal/apitest"
	"riskd/internal/browsertest"
	"riskd/internal/kafkatest"
)

// lockByBruteForce sends five wrong passwords for account through Kafka
// (the fifth locks it, rule brute-force-lock) and waits for the decisions.
func lockByBruteForce(t *testing.T, e *testEnv, account string) {
	t.Helper()
	ts := time.Now().Add(-time.Hour).UnixMilli()
	var logins []kafka.Message
	for i := range 5 {
		logins = append(logins, ev(fmt.Sprintf("%s-bf-%d", account, i), "login_failed", account, ts+int64(i)*1000,
			`,"ip":"198.51.100.9","device":{"id":"dev-console"}`))
	}
	kafkatest.Produce(t, e.addr, e.accountEvents, logins...)
	e.waitStored(t, 5)
	if got := e.decision(t, account+"-bf-4"); got.Action != "lock" {
		t.Fatalf("fifth wrong password: %s by %v, want lock", got.Action, got.MatchedRules)
	}
}

// The brute-force flow in the console: an account locked through Kafka
// events; support looks it up, sees the lock, the rule and the feature
// value it read and the events that led to it, unlocks with a reason and
// the identity check done, and sees the unlock in the timeline; then labels
// the locking event and suppresses a rule for the account, and lifts it.
func TestConsoleSupportUnlocksABruteForceLock(t *testing.T) {
	e, d, b := consoleEnv(t)
	const account = "acct-console-bf"
	lockByBruteForce(t, e, account)

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleSupport])
	tab.Click("nav-accounts")
	tab.Fill("account-search", account)
	tab.Click("account-go")
	state := tab.WaitText("lock-state", "locked")
	if !strings.Contains(state, "brute-force-lock") {
		t.Fatalf("lock state %q does not name the rule", state)
	}
	timeline := tab.WaitText("timeline", "brute-force-lock")
	if !strings.Contains(timeline, "failed_logins_15m=5") {
		t.Errorf("the timeline does not show the feature value the rule read:\n%s", timeline)
	}
	for i := range 5 {
		if id := fmt.Sprintf("%s-bf-%d", account, i); !strings.Contains(timeline, id) {
			t.Errorf("the timeline lacks the event %s that led to the lock", id)
		}
	}
	tab.Screenshot("accounts")

	tab.Click("unlock")
	tab.Fill("unlock-reason", "owner called, ticket 123")
	tab.Select("unlock-verification", "id_document")
	tab.Screenshot("accounts-unlock")
	tab.Click("unlock-submit")
	tab.WaitText("lock-state", "not locked")
	tab.WaitTrue(`document.querySelector('[data-test="timeline-entry"][data-kind="unlock"]') !== null`, "an unlock in the timeline")
	if got := tab.Text("timeline"); !strings.Contains(got, "owner called, ticket 123") {
		t.Errorf("the unlock entry does not carry its reason:\n%s", got)
	}
	if tab.Present("unlock") {
		t.Error("an unlock control is still shown for an unlocked account")
	}

	// The locking event was the owner mistyping: support labels it.
	tab.ClickCSS(`[data-test="timeline-entry"][data-event="` + account + `-bf-4"] [data-test="label-not-fraud"]`)
	tab.WaitTrue(`document.querySelector('[data-test="timeline-entry"][data-kind="label"]') !== null`, "a label in the timeline")
	if got := tab.Text("timeline"); !strings.Contains(got, "not_fraud") {
		t.Errorf("the label entry does not say not_fraud:\n%s", got)
	}

	// The owner keeps mistyping: support mutes the warning rule for the
	// account, then lifts that again.
	tab.Click("suppress")
	tab.Fill("suppress-rule", "failed-logins-warning")
	tab.Select("suppress-duration", "24h")
	tab.Fill("suppress-reason", "owner warned by phone")
	tab.Click("suppress-submit")
	tab.WaitText("suppressions", "failed-logins-warning")
	tab.Click("lift-failed-logins-warning")
	tab.WaitGone("lift-failed-logins-warning")
	tab.WaitTrue(`document.querySelector('[data-test="timeline-entry"][data-kind="lift"]') !== null`, "a lift in the timeline")
}

// A viewer sees the locked account but no control that changes it, and
// the API refuses the change when the viewer's session sends it anyway:
// 403 with the session's CSRF token (the API's role check), 403 without
// it (the console's CSRF check).
func TestConsoleViewerCannotUnlock(t *testing.T) {
	e, d, b := consoleEnv(t)
	const account = "acct-console-viewer"
	lockByBruteForce(t, e, account)

	tab := b.Tab(t, "http://"+d.httpAddr)
	tab.SignIn(apitest.Secrets[api.RoleViewer])
	tab.Go("#/accounts/" + account)
	tab.WaitText("lock-state", "brute-force-lock")
	tab.WaitFor("timeline")
	for _, control := range []string{"unlock", "lock", "suppress", "label-fraud", "label-not-fraud"} {
		if tab.Present(control) {
			t.Errorf("the viewer is shown the %s control", control)
		}
	}
	for _, page := range []string{"nav-review", "nav-alerts"} {
		if tab.Present(page) {
			t.Errorf("the viewer's nav shows %s", page)
		}
	}

	unlock := func(withCSRF bool) int {
		return browsertest.Eval[int](tab, fmt.Sprintf(`(async () => {
			const s = await (await fetch("/console/session")).json();
			const headers = {"Content-Type": "application/json"};
			if (%t) headers["X-CSRF-Token"] = s.csrf;
			const r = await fetch("/console/api/v1/accounts/%s/unlock", {method: "POST", headers,
				body: JSON.stringify({reason: "viewer tries", verification: "id_document"})});
			return r.status;
		})()`, withCSRF, account))
	}
	if got := unlock(true); got != 403 {
		t.Errorf("the viewer's unlock with the CSRF token: %d, want 403", got)
	}
	if got := unlock(false); got != 403 {
		t.Errorf("the viewer's unlock without the CSRF token: %d, want 403", got)
	}
	c := apitest.Client{T: t, Base: "http://" + d.httpAddr}
	if code, body := c.Do(api.RoleSupport, "GET", "/v1/accounts/"+account+"/timeline", nil); code != 200 ||
		!strings.Contains(string(body), `"locked":true`) {
		t.Fatalf("after the viewer's tries the account must still be locked: %d %s", code, body)
	}
}
