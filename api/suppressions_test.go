package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"riskd/api"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// TestSuppressionsThroughTheAPI: a suppressed rule stops counting for the
// account at once (the decide answer lists it as suppressed), other
// accounts still get it; the suppression is active, in the history, in
// the audit log and on risk.actions; the lift makes the rule count again,
// and a second lift is 404. Bad requests are refused with what was wrong.
func TestSuppressionsThroughTheAPI(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	pay := func(id, account string) api.DecideResponse {
		return c.Decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":%q,"amount":2500,"currency":"EUR",`+
			`"channel":"transfer","payee_id":"payee-scam-0003"}`, id, time.Now().UnixMilli(), account))
	}
	if r := pay("sp-0", "acct-sp"); r.Action.String() != "block" || r.Code != "scam.payee_reported" {
		t.Fatalf("payment to a scam payee before the suppression: %+v", r)
	}

	for _, tc := range []struct {
		name string
		body map[string]string
		code int
		err  string
	}{
		{"a rule not in the live set", map[string]string{"rule": "no-such-rule", "duration": "72h", "reason": "x"}, 404,
			`rule "no-such-rule" is not in the live rule set`},
		{"no duration", map[string]string{"rule": "scam-payee", "reason": "x"}, 400,
			`duration: want a positive Go duration up to 2160h (90 days), e.g. "72h"`},
		{"a duration over 90 days", map[string]string{"rule": "scam-payee", "duration": "2161h", "reason": "x"}, 400,
			`duration: want a positive Go duration up to 2160h (90 days), e.g. "72h"`},
		{"no reason", map[string]string{"rule": "scam-payee", "duration": "72h", "reason": " "}, 400,
			"reason: required, at most 500 characters (it is audited)"},
		{"a reason over 500 characters", map[string]string{"rule": "scam-payee", "duration": "72h", "reason": strings.Repeat("x", 501)}, 400,
			"reason: required, at most 500 characters (it is audited)"},
		{"no rule", map[string]string{"duration": "72h", "reason": "x"}, 400,
			"rule: required, the id of a live rule (at most 256 bytes)"},
	} {
		code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sp/suppressions", tc.body)
		var e api.ErrorBody
		if code != tc.code || json.Unmarshal(body, &e) != nil || e.Error != tc.err {
			t.Errorf("%s: %d %s, want %d %q", tc.name, code, body, tc.code, tc.err)
		}
	}

	before := time.Now().UTC().Truncate(time.Millisecond)
	code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sp/suppressions",
		map[string]string{"rule": "scam-payee", "duration": "72h", "reason": "payee is the owner's landlord, verified"})
	var ev api.SuppressionEvent
	if code != 201 || json.Unmarshal(body, &ev) != nil || ev.RuleID != "scam-payee" || ev.Action != "suppress" ||
		ev.Actor != "api:support-token" || ev.At.Before(before) || !ev.Until.Equal(ev.At.Add(72*time.Hour)) || ev.RequestID == "" {
		t.Fatalf("suppress: %d %s", code, body)
	}
	r := pay("sp-1", "acct-sp")
	if r.Action.String() == "block" || slices.ContainsFunc(r.Reasons, func(x api.Reason) bool { return x.RuleID == "scam-payee" }) ||
		!slices.Equal(r.Suppressed, []string{"scam-payee"}) {
		t.Fatalf("payment to the scam payee with scam-payee suppressed: %+v", r)
	}
	if r := pay("sp-2", "acct-other"); r.Action.String() != "block" || len(r.Suppressed) != 0 {
		t.Fatalf("another account's payment to the scam payee: %+v", r)
	}

	code, body = c.Do(api.RoleViewer, "GET", "/v1/accounts/acct-sp/suppressions", nil)
	var list api.SuppressionsResponse
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Active) != 1 || list.Active[0].RuleID != "scam-payee" ||
		!list.Active[0].Until.Equal(ev.Until) || list.Active[0].By != "support:support-token" ||
		len(list.History) != 1 || list.History[0] != ev {
		t.Fatalf("suppressions: %d %s", code, body)
	}

	code, body = c.Do(api.RoleAnalyst, "DELETE", "/v1/accounts/acct-sp/suppressions/scam-payee", map[string]string{"reason": "reported again"})
	var lifted api.SuppressionEvent
	if code != 200 || json.Unmarshal(body, &lifted) != nil || lifted.Action != "lift" || lifted.Actor != "api:analyst-token" ||
		!lifted.Until.IsZero() || lifted.Reason != "reported again" {
		t.Fatalf("lift: %d %s", code, body)
	}
	if r := pay("sp-3", "acct-sp"); r.Action.String() != "block" || len(r.Suppressed) != 0 {
		t.Fatalf("payment after the lift: %+v", r)
	}
	code, body = c.Do(api.RoleSupport, "DELETE", "/v1/accounts/acct-sp/suppressions/scam-payee", nil)
	if code != 404 || !strings.Contains(string(body), "rule scam-payee is not suppressed for account acct-sp") {
		t.Fatalf("second lift: %d %s, want 404", code, body)
	}
	code, body = c.Do(api.RoleViewer, "GET", "/v1/accounts/acct-sp/suppressions", nil)
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Active) != 0 || len(list.History) != 2 ||
		list.History[0].Action != "lift" {
		t.Fatalf("suppressions after the lift: %d %s", code, body)
	}

	audit, err := env.store.AuditLog(t.Context(), before.Add(-time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, a := range audit {
		if a.Object == "acct-sp" {
			audited = append(audited, a.Action+" by "+a.Actor+": "+a.Detail)
		}
	}
	wantUntil, _ := json.Marshal(ev.Until)
	want := []string{
		`account.suppress by support-token: {"rule":"scam-payee","until":` + string(wantUntil) + `,"reason":"payee is the owner's landlord, verified"}`,
		`account.unsuppress by analyst-token: {"rule":"scam-payee","reason":"reported again"}`,
	}
	if !slices.Equal(audited, want) {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(audited, "\n"), strings.Join(want, "\n"))
	}

	var cmds []string
	for _, m := range kafkatest.ReadAll(t, env.broker, "risk.actions", 2, waitLong) {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == "acct-sp" {
			cmds = append(cmds, a.Type+" "+a.RuleID+" "+a.Actor)
		}
	}
	if want := []string{"suppress scam-payee api:support-token", "unsuppress scam-payee api:analyst-token"}; !slices.Equal(cmds, want) {
		t.Errorf("risk.actions: %v, want %v", cmds, want)
	}
}
