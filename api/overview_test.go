package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"riskd/api"
	"riskd/engine"
	"riskd/rules"
)

// The overview counts the last minutes' decisions by minute and action,
// their top rules, alerts and late events, from the store.
func TestOverviewCountsTheRecentDecisions(t *testing.T) {
	r := newRig(t, api.DecideConfig{})
	now := time.Now()
	var ds []*engine.Decision
	for i := range 5 {
		d := &engine.Decision{EventID: fmt.Sprintf("ov-%d", i), AccountID: "acct-ov", EventType: "payment",
			EventTS: now.UnixMilli(), DecidedAt: now, Action: rules.Allow, RuleSetVersion: "1-x",
			Raw: []byte(`{}`)}
		if i < 2 {
			d.Action = rules.Block
			d.Matched = []engine.RuleHit{{RuleID: "scam-payee", Action: rules.Block, Score: 30}}
			d.Alerts = []engine.AlertMessage{{RuleID: "scam-payee", Message: "stop"}}
			d.Late = i == 0
		}
		ds = append(ds, d)
	}
	// An old decision, out of the window.
	ds = append(ds, &engine.Decision{EventID: "ov-old", AccountID: "acct-ov", EventType: "payment",
		EventTS: now.Add(-3 * time.Hour).UnixMilli(), DecidedAt: now.Add(-3 * time.Hour), Action: rules.Block,
		Matched: []engine.RuleHit{{RuleID: "old-rule", Action: rules.Block}}, RuleSetVersion: "1-x", Raw: []byte(`{}`)})
	if err := r.store.WriteDecisions(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	code, body := r.c.Do(api.RoleViewer, "GET", "/v1/overview?minutes=60", nil)
	if code != 200 {
		t.Fatalf("overview: %d %s", code, body)
	}
	var ov api.OverviewResponse
	if err := json.Unmarshal(body, &ov); err != nil {
		t.Fatal(err)
	}
	if ov.Actions["allow"] != 3 || ov.Actions["block"] != 2 || len(ov.Actions) != 2 {
		t.Errorf("actions: %v, want allow 3, block 2", ov.Actions)
	}
	if len(ov.TopRules) != 1 || ov.TopRules[0] != (api.RuleHits{RuleID: "scam-payee", Hits: 2}) {
		t.Errorf("top rules: %+v", ov.TopRules)
	}
	if ov.Alerts != 2 || ov.LateEvents != 1 {
		t.Errorf("alerts %d, late events %d, want 2 and 1", ov.Alerts, ov.LateEvents)
	}
	minute := now.Truncate(time.Minute).UnixMilli()
	for _, m := range ov.PerMinute {
		if m.Minute != minute {
			t.Errorf("per minute: %+v, want every decision in minute %d", m, minute)
		}
	}
	for _, q := range []string{"minutes=0", "minutes=99999", "minutes=x", "hours=1", "minutes=1&minutes=2"} {
		if code, body := r.c.Do(api.RoleViewer, "GET", "/v1/overview?"+q, nil); code != 400 {
			t.Errorf("overview?%s: %d %s, want 400", q, code, body)
		}
	}
}
