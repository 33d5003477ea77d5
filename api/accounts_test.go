package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"riskd/api"
	"riskd/internal/kafkatest"
	"riskd/streams"
)

// TestSupportLocksAndUnlocks: a support lock refuses the next payment, is
// in the history and on risk.actions; the unlock lets payments through.
func TestSupportLocksAndUnlocks(t *testing.T) {
	env := newRig(t, api.DecideConfig{})
	c := env.c
	pay := func(id string) api.DecideResponse {
		return c.Decide(fmt.Sprintf(`{"event_id":%q,"type":"payment","ts":%d,"account_id":"acct-sup","amount":700,"currency":"EUR","channel":"qr"}`,
			id, time.Now().UnixMilli()))
	}
	code, body := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "owner reported a stolen phone", "duration": "2h"})
	if code != 200 {
		t.Fatalf("lock: %d %s", code, body)
	}
	if r := pay("sup-1"); r.Action.String() != "lock" || r.Reason != "account_locked" {
		t.Fatalf("payment on a support-locked account: %+v", r)
	}
	code, body = c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/unlock", map[string]string{"reason": "owner verified by video call"})
	if code != 200 {
		t.Fatalf("unlock: %d %s", code, body)
	}
	if r := pay("sup-2"); r.Action.String() == "lock" {
		t.Fatalf("payment after unlock: %+v", r)
	}
	code, body = c.Do(api.RoleViewer, "GET", "/v1/accounts/acct-sup/locks", nil)
	var hist struct{ Locks []api.LockEvent }
	if code != 200 || json.Unmarshal(body, &hist) != nil || len(hist.Locks) != 2 ||
		hist.Locks[0].Action != "unlock" || hist.Locks[1].Action != "lock" || hist.Locks[1].Actor != "api:support-token" ||
		hist.Locks[1].Reason != "owner reported a stolen phone" {
		t.Fatalf("lock history: %d %s", code, body)
	}
	actions := kafkatest.ReadAll(t, env.broker, "risk.actions", 2, waitLong)
	var kinds []string
	for _, m := range actions {
		var a streams.ActionRecord
		if err := json.Unmarshal(m.Value, &a); err == nil && a.AccountID == "acct-sup" {
			kinds = append(kinds, a.Type)
		}
	}
	if !slices.Equal(kinds, []string{"lock", "unlock"}) {
		t.Fatalf("risk.actions for acct-sup: %v, want lock then unlock", kinds)
	}
	if code, _ := c.Do(api.RoleSupport, "POST", "/v1/accounts/acct-sup/lock", map[string]string{"reason": "", "duration": "2h"}); code != 400 {
		t.Fatalf("lock without a reason: %d, want 400", code)
	}
}
